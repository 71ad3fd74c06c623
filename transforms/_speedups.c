/* The transform's hot loops in C: cutting a well-formed ISO 2709 record into
 * its fields, decoding the fields a mapping reads into the `MarcRecord`
 * dictionaries, and trimming a subfield value for display (`clean`).
 * transforms/iso2709.py, encoding.py and bibliographic.py hold the same logic
 * in Python, used when this module is not built and for every record this
 * module declines (returns None for); tests check that both give identical
 * results on the test corpus and on generated strings.
 *
 * Both functions only read their arguments; a record they cannot handle in
 * the common way is handed back (None) rather than repaired here.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define LEADER_LENGTH 24
#define ENTRY_LENGTH 12
#define RECORD_TERMINATOR 0x1D
#define FIELD_TERMINATOR 0x1E
#define SUBFIELD_DELIMITER 0x1F

/* The tuple (a, b), taking over the caller's references to both. */
static PyObject *pair_of(PyObject *a, PyObject *b)
{
    PyObject *pair = PyTuple_Pack(2, a, b);
    Py_DECREF(a);
    Py_DECREF(b);
    return pair;
}

/* Tags are mostly three digits: one shared str each, made once, so that the
 * mappings' dictionary and set lookups find their hash already computed. */
static PyObject *digit_tags[1000];

static PyObject *tag_text(const char *entry)
{
    if (entry[0] >= '0' && entry[0] <= '9' && entry[1] >= '0' && entry[1] <= '9' && entry[2] >= '0' && entry[2] <= '9') {
        int number = (entry[0] - '0') * 100 + (entry[1] - '0') * 10 + (entry[2] - '0');
        if (digit_tags[number] == NULL) {
            digit_tags[number] = PyUnicode_DecodeASCII(entry, 3, NULL);
            if (digit_tags[number] == NULL)
                return NULL;
            PyUnicode_InternInPlace(&digit_tags[number]);
        }
        Py_INCREF(digit_tags[number]);
        return digit_tags[number];
    }
    return PyUnicode_DecodeASCII(entry, 3, NULL);
}

static int read_digits(const char *text, int count, Py_ssize_t *value)
{
    Py_ssize_t result = 0;
    for (int i = 0; i < count; i++) {
        if (text[i] < '0' || text[i] > '9')
            return 0;
        result = result * 10 + (text[i] - '0');
    }
    *value = result;
    return 1;
}

/* split_fields(record: bytes) -> (tags: list[str], datas: list[bytes]) | None
 *
 * For a record whose directory entries are printable tags and digits, whose
 * fields follow one another in directory order from offset 0, each ending with
 * the field terminator exactly where its length says and holding no other
 * terminator, up to the record terminator. Anything else: None.
 */
static PyObject *split_fields(PyObject *module, PyObject *record)
{
    char *data;
    Py_ssize_t size;
    if (PyBytes_AsStringAndSize(record, &data, &size) < 0)
        return NULL;
    if (size < LEADER_LENGTH + 2 || data[size - 1] != RECORD_TERMINATOR)
        Py_RETURN_NONE;
    const char *directory_end = memchr(data + LEADER_LENGTH, FIELD_TERMINATOR, size - LEADER_LENGTH);
    if (directory_end == NULL)
        Py_RETURN_NONE;
    Py_ssize_t directory_length = directory_end - data - LEADER_LENGTH;
    if (directory_length == 0 || directory_length % ENTRY_LENGTH)
        Py_RETURN_NONE;
    Py_ssize_t count = directory_length / ENTRY_LENGTH;
    const char *body = directory_end + 1;
    Py_ssize_t body_length = (data + size - 1) - body;

    Py_ssize_t expected_offset = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        const char *entry = data + LEADER_LENGTH + i * ENTRY_LENGTH;
        Py_ssize_t length, offset;
        for (int k = 0; k < 3; k++)
            if (entry[k] < 0x21 || entry[k] > 0x7E)
                Py_RETURN_NONE;
        if (!read_digits(entry + 3, 4, &length) || !read_digits(entry + 7, 5, &offset))
            Py_RETURN_NONE;
        if (offset != expected_offset || length < 1 || offset + length > body_length)
            Py_RETURN_NONE;
        if (body[offset + length - 1] != FIELD_TERMINATOR || memchr(body + offset, FIELD_TERMINATOR, length - 1) != NULL)
            Py_RETURN_NONE;
        expected_offset += length;
    }
    if (expected_offset != body_length)
        Py_RETURN_NONE;

    PyObject *tags = PyList_New(count);
    PyObject *datas = PyList_New(count);
    if (tags == NULL || datas == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < count; i++) {
        const char *entry = data + LEADER_LENGTH + i * ENTRY_LENGTH;
        Py_ssize_t length, offset;
        read_digits(entry + 3, 4, &length);
        read_digits(entry + 7, 5, &offset);
        PyObject *tag = tag_text(entry);
        PyObject *field = PyBytes_FromStringAndSize(body + offset, length - 1);
        if (tag == NULL || field == NULL) {
            Py_XDECREF(tag);
            Py_XDECREF(field);
            goto fail;
        }
        PyList_SET_ITEM(tags, i, tag);
        PyList_SET_ITEM(datas, i, field);
    }
    return pair_of(tags, datas);
fail:
    Py_XDECREF(tags);
    Py_XDECREF(datas);
    return NULL;
}

/* Append `value` to the list `table[key]`, creating it. */
static int append_to(PyObject *table, PyObject *key, PyObject *value)
{
    PyObject *values = PyDict_GetItemWithError(table, key);
    if (values != NULL)
        return PyList_Append(values, value);
    if (PyErr_Occurred())
        return -1;
    values = PyList_New(1);
    if (values == NULL)
        return -1;
    Py_INCREF(value);
    PyList_SET_ITEM(values, 0, value);
    int status = PyDict_SetItem(table, key, values);
    Py_DECREF(values);
    return status;
}

static int is_control_tag(PyObject *tag)
{
    if (PyUnicode_GET_LENGTH(tag) != 3)
        return 0;
    Py_UCS4 a = PyUnicode_READ_CHAR(tag, 0), b = PyUnicode_READ_CHAR(tag, 1), c = PyUnicode_READ_CHAR(tag, 2);
    return a == '0' && b == '0' && c >= '0' && c <= '9';
}

/* Whether decoded text holds a character transforms/encoding.py removes:
 * C0 controls but TAB, LF and CR (and, in a data field, the subfield
 * delimiter), DEL and the C1 controls but the non-sorting markers. */
static int has_control_character(PyObject *text, int control_field)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *characters = PyUnicode_DATA(text);
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, characters, i);
        if (c >= 0xA0 || (c >= 0x20 && c < 0x7F))
            continue;
        if (c == '\t' || c == '\n' || c == '\r' || (c == SUBFIELD_DELIMITER && !control_field))
            continue;
        if (c == 0x88 || c == 0x89 || c == 0x98 || c == 0x9C)
            continue;
        return 1;
    }
    return 0;
}

static int is_blank(PyObject *text, Py_ssize_t start, Py_ssize_t end)
{
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    for (Py_ssize_t i = start; i < end; i++)
        if (!Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i)))
            return 0;
    return 1;
}

/* Index a data field's subfields: table[tag + code] gets the value of each
 * subfield that is not blank (empty or white space), in order; the text before
 * the first delimiter (the indicators) is not a subfield. */
static int index_subfields(PyObject *index, PyObject *tag, PyObject *text)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    Py_ssize_t start = PyUnicode_FindChar(text, SUBFIELD_DELIMITER, 0, length, 1);
    if (start == -2)
        return -1;
    while (start >= 0) {
        Py_ssize_t next = PyUnicode_FindChar(text, SUBFIELD_DELIMITER, start + 1, length, 1);
        if (next == -2)
            return -1;
        Py_ssize_t end = next >= 0 ? next : length;
        if (end > start + 2 && !is_blank(text, start + 2, end)) {
            Py_UCS4 code = PyUnicode_READ_CHAR(text, start + 1);
            PyObject *key;
            if (code < 0x80 && PyUnicode_IS_ASCII(tag)) {  /* tag + code without a temporary string */
                char ascii[4];
                memcpy(ascii, PyUnicode_DATA(tag), 3);
                ascii[3] = (char)code;
                key = PyUnicode_FromStringAndSize(ascii, 4);
            } else {
                PyObject *code_text = PyUnicode_Substring(text, start + 1, start + 2);
                key = code_text ? PyUnicode_Concat(tag, code_text) : NULL;
                Py_XDECREF(code_text);
            }
            PyObject *value = key ? PyUnicode_Substring(text, start + 2, end) : NULL;
            int status = value ? append_to(index, key, value) : -1;
            Py_XDECREF(key);
            Py_XDECREF(value);
            if (status < 0)
                return -1;
        }
        start = next;
    }
    return 0;
}

/* decode_fields(tags, datas, wanted, codec, errors) -> (fields, by_subfield) | None
 *
 * fields: tag → texts of its fields (decoded with `codec`), for the tags in
 * `wanted`; by_subfield: tag + code → non-blank subfield values of those data
 * fields.
 * None when a field holds a control character (the Python path removes
 * them). Decoding errors raise as bytes.decode raises them.
 */
static PyObject *decode_fields(PyObject *module, PyObject *args)
{
    PyObject *tags, *datas, *wanted;
    const char *codec, *errors;
    if (!PyArg_ParseTuple(args, "O!O!Oss", &PyList_Type, &tags, &PyList_Type, &datas, &wanted, &codec, &errors))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(tags);
    if (PyList_GET_SIZE(datas) != count) {
        PyErr_SetString(PyExc_ValueError, "tags and datas differ in length");
        return NULL;
    }
    PyObject *fields = PyDict_New();
    PyObject *index = PyDict_New();
    if (fields == NULL || index == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *tag = PyList_GET_ITEM(tags, i);
        PyObject *data = PyList_GET_ITEM(datas, i);
        int found = PySet_Contains(wanted, tag);
        if (found < 0)
            goto fail;
        if (!found)
            continue;
        if (!PyUnicode_Check(tag) || !PyBytes_Check(data)) {
            PyErr_SetString(PyExc_TypeError, "tags must be str and datas bytes");
            goto fail;
        }
        int control = is_control_tag(tag);
        PyObject *text = PyUnicode_Decode(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), codec, errors);
        if (text == NULL)
            goto fail;
        if (has_control_character(text, control)) {
            Py_DECREF(text);
            Py_DECREF(fields);
            Py_DECREF(index);
            Py_RETURN_NONE;
        }
        int status = append_to(fields, tag, text);
        if (status == 0 && !control)
            status = index_subfields(index, tag, text);
        Py_DECREF(text);
        if (status < 0)
            goto fail;
    }
    return pair_of(fields, index);
fail:
    Py_XDECREF(fields);
    Py_XDECREF(index);
    return NULL;
}

/* A character bibliographic.clean removes: [\x00-\x08\x0b-\x1f\x7f-\x9f], and the
 * bidirectional embeddings, overrides and isolates U+202A-U+202E, U+2066-U+2069. */
static int is_display_control(Py_UCS4 c)
{
    return c <= 0x08 || (c >= 0x0B && c <= 0x1F) || (c >= 0x7F && c <= 0x9F) || (c >= 0x202A && c <= 0x202E)
           || (c >= 0x2066 && c <= 0x2069);
}

/* A character bibliographic.clean turns into a space: TAB, LF. */
static int is_line_break(Py_UCS4 c)
{
    return c == 0x09 || c == 0x0A;
}

static int is_trailing_punctuation(Py_UCS4 c)
{
    return c == '/' || c == ':' || c == ';' || c == ',' || c == '.' || c == '=';
}

/* clean(value: str | None) -> str | None: control characters removed, TAB and LF made spaces, white
 * space stripped, trailing ISBD punctuation (and the space before it) cut;
 * None for nothing left. */
static PyObject *clean(PyObject *module, PyObject *value)
{
    if (value == Py_None)
        Py_RETURN_NONE;
    if (!PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "clean() takes a str or None");
        return NULL;
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(value);
    int kind = PyUnicode_KIND(value);
    const void *data = PyUnicode_DATA(value);
    PyObject *text = value;
    Py_INCREF(text);
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS4 found = PyUnicode_READ(kind, data, i);
        if (is_display_control(found) || is_line_break(found)) {  /* rare: copy without them */
            Py_UCS4 *kept = PyMem_Malloc(sizeof(Py_UCS4) * (length ? length : 1));
            if (kept == NULL) {
                Py_DECREF(text);
                return PyErr_NoMemory();
            }
            Py_ssize_t count = 0;
            for (Py_ssize_t j = 0; j < length; j++) {
                Py_UCS4 c = PyUnicode_READ(kind, data, j);
                if (is_line_break(c))
                    kept[count++] = ' ';
                else if (!is_display_control(c))
                    kept[count++] = c;
            }
            Py_DECREF(text);
            text = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, kept, count);
            PyMem_Free(kept);
            if (text == NULL)
                return NULL;
            break;
        }
    }
    length = PyUnicode_GET_LENGTH(text);
    kind = PyUnicode_KIND(text);
    data = PyUnicode_DATA(text);
    Py_ssize_t start = 0, end = length;
    while (start < end && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, start)))
        start++;
    while (end > start && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, end - 1)))
        end--;
    while (end > start && is_trailing_punctuation(PyUnicode_READ(kind, data, end - 1))) {
        while (end > start && is_trailing_punctuation(PyUnicode_READ(kind, data, end - 1)))
            end--;
        while (end > start && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, end - 1)))
            end--;
    }
    if (end == start) {
        Py_DECREF(text);
        Py_RETURN_NONE;
    }
    if (start == 0 && end == length)
        return text;
    PyObject *result = PyUnicode_Substring(text, start, end);
    Py_DECREF(text);
    return result;
}

static PyMethodDef methods[] = {
    {"split_fields", split_fields, METH_O, "split_fields(record) -> (tags, datas) | None: the fields of a well-formed ISO 2709 record"},
    {"decode_fields", decode_fields, METH_VARARGS,
     "decode_fields(tags, datas, wanted, codec, errors) -> (fields, by_subfield) | None: decode the wanted fields"},
    {"clean", clean, METH_O, "clean(value) -> str | None: a subfield value trimmed for display"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "transforms._speedups", NULL, -1, methods};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }

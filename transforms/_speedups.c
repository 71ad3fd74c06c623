/* The transform's hot loops in C: cutting a well-formed ISO 2709 record into
 * its fields, decoding the fields a mapping reads into the `MarcRecord`
 * dictionaries, trimming a subfield value for display (`clean`), taking the
 * canonical fields a mapping reads as they are from the subfield index (`pick`)
 * and the CNMARC/UNIMARC and MARC21 mappings themselves (`describe_*`).
 * transforms/iso2709.py, encoding.py, bibliographic.py, cnmarc.py and marc21.py
 * hold the same logic in Python, used when this module is not built and for every record this
 * module declines (returns None for); tests check that both give identical
 * results on the test corpus and on generated strings.
 *
 * These functions only read their arguments; a record they cannot handle in
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
#define MAX_RECORD_BYTES 99999

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

/* split_record(record: bytes) -> (leader, tags, datas) | None: split_fields of a record whose
 * leader iso2709.parse_record accepts (ASCII, a record length of five digits) and whose size
 * ISO 2709 allows; None for anything else (the Python names what is wrong). */
static PyObject *split_record(PyObject *module, PyObject *record)
{
    if (!PyBytes_Check(record)) {
        PyErr_SetString(PyExc_TypeError, "split_record() takes bytes");
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(record);
    Py_ssize_t size = PyBytes_GET_SIZE(record);
    if (size > MAX_RECORD_BYTES || size < LEADER_LENGTH + 2)
        Py_RETURN_NONE;
    for (int i = 0; i < LEADER_LENGTH; i++)
        if (data[i] >= 0x80 || (i < 5 && (data[i] < '0' || data[i] > '9')))
            Py_RETURN_NONE;
    PyObject *fields = split_fields(module, record);
    if (fields == NULL || fields == Py_None)
        return fields;
    PyObject *leader = PyUnicode_DecodeASCII((const char *)data, LEADER_LENGTH, NULL);
    PyObject *result = leader ? PyTuple_Pack(3, leader, PyTuple_GET_ITEM(fields, 0), PyTuple_GET_ITEM(fields, 1)) : NULL;
    Py_XDECREF(leader);
    Py_DECREF(fields);
    return result;
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

/* tag + code for a three-digit tag and an ASCII code: one interned str each, made once (a
 * record's subfields would otherwise each make and hash a new key). A new reference; NULL
 * without an error for other tags and codes. */
static PyObject *subfield_keys[1000][128];

static PyObject *subfield_key(PyObject *tag, Py_UCS4 code)
{
    if (code >= 0x80 || PyUnicode_GET_LENGTH(tag) != 3 || !PyUnicode_IS_ASCII(tag))
        return NULL;
    const char *digits = PyUnicode_DATA(tag);
    if (digits[0] < '0' || digits[0] > '9' || digits[1] < '0' || digits[1] > '9' || digits[2] < '0' || digits[2] > '9')
        return NULL;
    PyObject **slot = &subfield_keys[(digits[0] - '0') * 100 + (digits[1] - '0') * 10 + (digits[2] - '0')][code];
    if (*slot == NULL) {
        char text[4] = {digits[0], digits[1], digits[2], (char)code};
        if ((*slot = PyUnicode_FromStringAndSize(text, 4)) == NULL)
            return NULL;
        PyUnicode_InternInPlace(slot);
    }
    Py_INCREF(*slot);
    return *slot;
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
            PyObject *key = subfield_key(tag, code);
            if (key == NULL && !PyErr_Occurred()) {
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

/* The decode function of `codec` (codecs.lookup(codec).decode), looked up once: a lookup by
 * name on every field costs more than decoding a field of GB18030. A borrowed reference. */
static PyObject *decoders;

static PyObject *decoder_of(const char *codec)
{
    if (decoders == NULL && (decoders = PyDict_New()) == NULL)
        return NULL;
    PyObject *found = PyDict_GetItemString(decoders, codec);
    if (found != NULL)
        return found;
    PyObject *decoder = PyCodec_Decoder(codec);
    if (decoder == NULL || PyDict_SetItemString(decoders, codec, decoder) < 0) {
        Py_XDECREF(decoder);
        return NULL;
    }
    Py_DECREF(decoder);
    return decoder;
}

/* bytes.decode(codec, errors) of `data`, with `decoder` (NULL for UTF-8). */
static PyObject *decoded(PyObject *data, PyObject *decoder, const char *codec, const char *errors)
{
    if (decoder == NULL)
        return PyUnicode_Decode(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), codec, errors);
    PyObject *result = PyObject_CallFunction(decoder, "Os", data, errors);
    if (result == NULL)
        return NULL;
    PyObject *text = PyTuple_GET_ITEM(result, 0);
    Py_INCREF(text);
    Py_DECREF(result);
    return text;
}

/* The wanted fields' texts, in order, decoded by one call of `decoder` (strict) on their bytes
 * joined by the field terminator: for a codec whose every call costs more than a field's
 * decoding (GB18030). No byte of a character is 0x1E in the codecs used here, so the text splits
 * back into the fields' texts exactly when it decodes; a new list, or NULL without an error when
 * it does not (a field that does not decode alone, a stray terminator inside a field: the
 * caller decodes field by field, and fails as it fails). */
static PyObject *decoded_together(PyObject *tags, PyObject *datas, PyObject *wanted, PyObject *decoder)
{
    Py_ssize_t count = PyList_GET_SIZE(tags), chosen = 0, size = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        int found = PySet_Contains(wanted, PyList_GET_ITEM(tags, i));
        if (found < 0)
            return NULL;
        if (!found)
            continue;
        if (!PyBytes_Check(PyList_GET_ITEM(datas, i)))
            return NULL;  /* the caller names the error */
        chosen++;
        size += PyBytes_GET_SIZE(PyList_GET_ITEM(datas, i)) + 1;
    }
    if (chosen < 2)
        return NULL;
    PyObject *joined = PyBytes_FromStringAndSize(NULL, size - 1);
    if (joined == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(joined);
    for (Py_ssize_t i = 0; i < count; i++) {
        if (PySet_Contains(wanted, PyList_GET_ITEM(tags, i)) != 1)
            continue;
        PyObject *data = PyList_GET_ITEM(datas, i);
        if (out != PyBytes_AS_STRING(joined))
            *out++ = FIELD_TERMINATOR;
        memcpy(out, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
        out += PyBytes_GET_SIZE(data);
    }
    PyObject *text = decoded(joined, decoder, NULL, "strict");
    Py_DECREF(joined);
    if (text == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
            PyErr_Clear();
        return NULL;
    }
    PyObject *terminator = PyUnicode_FromOrdinal(FIELD_TERMINATOR);
    PyObject *pieces = terminator ? PyUnicode_Split(text, terminator, -1) : NULL;
    Py_XDECREF(terminator);
    Py_DECREF(text);
    if (pieces != NULL && PyList_GET_SIZE(pieces) != chosen)
        Py_CLEAR(pieces);
    return pieces;
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
    int utf8 = strcmp(codec, "utf-8") == 0;
    PyObject *decoder = utf8 ? NULL : decoder_of(codec);
    if (!utf8 && decoder == NULL)
        return NULL;
    PyObject *pieces = NULL;
    Py_ssize_t piece = 0;
    if (decoder != NULL && strcmp(errors, "strict") == 0 && (pieces = decoded_together(tags, datas, wanted, decoder)) == NULL
        && PyErr_Occurred())
        return NULL;
    PyObject *fields = _PyDict_NewPresized(count < 32 ? count : 32);
    PyObject *index = _PyDict_NewPresized(count < 16 ? 2 * count : 32);
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
        PyObject *text = pieces ? PyList_GET_ITEM(pieces, piece++) : decoded(data, decoder, codec, errors);
        if (text == NULL)
            goto fail;
        if (pieces)
            Py_INCREF(text);
        if (has_control_character(text, control)) {
            Py_DECREF(text);
            Py_DECREF(fields);
            Py_DECREF(index);
            Py_XDECREF(pieces);
            Py_RETURN_NONE;
        }
        int status = append_to(fields, tag, text);
        if (status == 0 && !control)
            status = index_subfields(index, tag, text);
        Py_DECREF(text);
        if (status < 0)
            goto fail;
    }
    Py_XDECREF(pieces);
    return pair_of(fields, index);
fail:
    Py_XDECREF(pieces);
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

/* How `pick` takes a canonical field from the subfield index (transforms/bibliographic.py). */
enum { PICK_RAW, PICK_FIRST, PICK_JOIN, PICK_CLEANED };

static PyObject *subfield_values(PyObject *text, PyObject *codes);

/* The values of one key of a source: index[key] for a record's subfield index (a dict), the values
 * of the subfields whose codes are in `key`, in field order, for one data field's text (a str).
 * A new reference: a list, or None when a dict has no such key; NULL on error. */
static PyObject *key_values(PyObject *source, PyObject *key)
{
    if (PyUnicode_Check(source))
        return subfield_values(source, key);
    PyObject *values = PyDict_GetItemWithError(source, key);
    if (values == NULL)
        return PyErr_Occurred() ? NULL : (Py_INCREF(Py_None), Py_None);
    Py_INCREF(values);
    return values;
}

/* The values of `keys` of `source`, one key after another, taken as `how` says. */
static PyObject *picked(PyObject *source, PyObject *keys, long how, PyObject *separator)
{
    PyObject *taken = how == PICK_FIRST ? NULL : PyList_New(0);
    if (how != PICK_FIRST && taken == NULL)
        return NULL;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(keys); k++) {
        PyObject *values = key_values(source, PyTuple_GET_ITEM(keys, k));
        if (values == NULL)
            goto fail;
        if (values == Py_None || PyList_GET_SIZE(values) == 0) {
            Py_DECREF(values);
            continue;
        }
        if (how == PICK_FIRST) {
            PyObject *first = clean(NULL, PyList_GET_ITEM(values, 0));
            Py_DECREF(values);
            return first;
        }
        int status = 0;
        if (how == PICK_RAW)
            status = PyList_SetSlice(taken, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, values);
        for (Py_ssize_t i = 0; how != PICK_RAW && status == 0 && i < PyList_GET_SIZE(values); i++) {
            PyObject *value = clean(NULL, PyList_GET_ITEM(values, i));
            status = value == NULL ? -1 : value == Py_None ? 0 : PyList_Append(taken, value);
            Py_XDECREF(value);
        }
        Py_DECREF(values);
        if (status < 0)
            goto fail;
    }
    if (how == PICK_FIRST)
        Py_RETURN_NONE;
    if (how != PICK_JOIN)
        return taken;
    /* cleaned values are never empty: joined, they are empty only when there are none */
    PyObject *joined = PyList_GET_SIZE(taken) ? PyUnicode_Join(separator, taken) : (Py_INCREF(Py_None), Py_None);
    Py_DECREF(taken);
    return joined;
fail:
    Py_XDECREF(taken);
    return NULL;
}

/* The fields of `spec` taken from `source` (see pick and pick_in_field): a dict. */
static PyObject *pick_from(PyObject *source, PyObject *spec)
{
    /* room for what the describe_* functions add to it besides */
    PyObject *result = _PyDict_NewPresized(PyTuple_GET_SIZE(spec) + 10);
    if (result == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(spec); i++) {
        PyObject *item = PyTuple_GET_ITEM(spec, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 4 || !PyTuple_Check(PyTuple_GET_ITEM(item, 1))
            || !PyLong_Check(PyTuple_GET_ITEM(item, 2))) {
            PyErr_SetString(PyExc_TypeError, "pick() takes a spec of (name, keys tuple, how, separator)");
            goto fail;
        }
        long how = PyLong_AsLong(PyTuple_GET_ITEM(item, 2));
        PyObject *separator = PyTuple_GET_ITEM(item, 3);
        if (how < PICK_RAW || how > PICK_CLEANED || (how == PICK_JOIN && !PyUnicode_Check(separator))) {
            PyErr_SetString(PyExc_ValueError, "pick(): unknown way, or a join without a str separator");
            goto fail;
        }
        PyObject *value = picked(source, PyTuple_GET_ITEM(item, 1), how, separator);
        int status = value ? PyDict_SetItem(result, PyTuple_GET_ITEM(item, 0), value) : -1;
        Py_XDECREF(value);
        if (status < 0)
            goto fail;
    }
    return result;
fail:
    Py_DECREF(result);
    return NULL;
}

/* pick(index, spec) -> dict: for each (name, keys, how, separator) of `spec`, name → the values
 * of the subfields `keys` (tag + code) of a record's subfield `index`, key after key, taken as
 * `how` says. */
static PyObject *pick(PyObject *module, PyObject *args)
{
    PyObject *index, *spec;
    if (!PyArg_ParseTuple(args, "O!O!", &PyDict_Type, &index, &PyTuple_Type, &spec))
        return NULL;
    return pick_from(index, spec);
}

/* pick_in_field(text, spec) -> dict: as pick, from one data field's text, each key a group of
 * subfield codes whose values are taken in field order. */
static PyObject *pick_in_field(PyObject *module, PyObject *args)
{
    PyObject *text, *spec;
    if (!PyArg_ParseTuple(args, "UO!", &text, &PyTuple_Type, &spec))
        return NULL;
    return pick_from(text, spec);
}

/* ---- names: the authors of name fields, their role words cut (bibliographic.strip_role) ---- */

/* The role words bibliographic._ROLE_SUFFIX cuts from the end of a name ("张三著"). */
static const Py_UCS4 *role_words[] = {
    U"主编", U"编著", U"编译", U"编纂", U"编辑", U"整理", U"校注", U"注释", U"选编", U"原著",
    U"著", U"编", U"译", U"绘", U"撰", U"校", U"等", NULL,
};

static int ends_role_word(Py_UCS4 c)
{
    for (int w = 0; role_words[w] != NULL; w++)
        for (const Py_UCS4 *p = role_words[w]; *p; p++)
            if (p[1] == 0 && *p == c)
                return 1;
    return 0;
}

/* Where `\s*(role word)+$` first matches in text[0:length]: the smallest start from which white
 * space then a run of role words reaches the end; -1 when none does. */
static Py_ssize_t role_suffix_start(int kind, const void *data, Py_ssize_t length)
{
    char *reaches_end = PyMem_Calloc(length + 1, 1);  /* text[j:] is role words only */
    if (reaches_end == NULL)
        return -2;
    reaches_end[length] = 1;
    for (Py_ssize_t j = length - 1; j >= 0; j--)
        for (int w = 0; role_words[w] != NULL && !reaches_end[j]; w++) {
            Py_ssize_t k = 0;
            while (role_words[w][k] && j + k < length && PyUnicode_READ(kind, data, j + k) == role_words[w][k])
                k++;
            if (role_words[w][k] == 0 && reaches_end[j + k])
                reaches_end[j] = 1;
        }
    Py_ssize_t found = -1;
    for (Py_ssize_t start = 0; start < length && found < 0; start++) {
        Py_ssize_t words = start;
        while (words < length && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, words)))
            words++;
        if (words < length && reaches_end[words])
            found = start;
    }
    PyMem_Free(reaches_end);
    return found;
}

static int in_chars(Py_UCS4 c, const char *chars)
{
    return c < 0x80 && c != 0 && strchr(chars, (int)c) != NULL;
}

/* text[start:end] without the characters of `chars` at either end: a new reference. */
static PyObject *strip_chars(PyObject *text, Py_ssize_t start, Py_ssize_t end, const char *chars)
{
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    while (start < end && in_chars(PyUnicode_READ(kind, data, start), chars))
        start++;
    while (end > start && in_chars(PyUnicode_READ(kind, data, end - 1), chars))
        end--;
    return PyUnicode_Substring(text, start, end);
}

/* strip_role(name: str) -> str, as bibliographic.strip_role. */
static PyObject *strip_role(PyObject *module, PyObject *value)
{
    if (!PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "strip_role() takes a str");
        return NULL;
    }
    int kind = PyUnicode_KIND(value);
    const void *data = PyUnicode_DATA(value);
    Py_ssize_t start = 0, end = PyUnicode_GET_LENGTH(value);
    while (start < end && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, start)))
        start++;
    while (end > start && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, end - 1)))
        end--;
    PyObject *name = PyUnicode_Substring(value, start, end);
    if (name == NULL)
        return NULL;
    Py_ssize_t length = PyUnicode_GET_LENGTH(name), kept = length;
    if (length > 0 && ends_role_word(PyUnicode_READ_CHAR(name, length - 1))) {
        kept = role_suffix_start(PyUnicode_KIND(name), PyUnicode_DATA(name), length);
        if (kept == -2) {
            Py_DECREF(name);
            return PyErr_NoMemory();
        }
        if (kept < 0)
            kept = length;
    }
    PyObject *stripped = strip_chars(name, 0, kept, " ,.;");
    if (stripped == NULL || PyUnicode_GET_LENGTH(stripped) > 0) {
        Py_DECREF(name);
        return stripped;
    }
    Py_DECREF(stripped);
    return name;
}

/* The values of the subfields of a data field's text whose codes are among `codes`, in order
 * (marc.subfields): a new list. */
static PyObject *subfield_values(PyObject *text, PyObject *codes)
{
    PyObject *values = PyList_New(0);
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    Py_ssize_t start = PyUnicode_FindChar(text, SUBFIELD_DELIMITER, 0, length, 1);
    while (values != NULL && start >= 0) {
        Py_ssize_t next = PyUnicode_FindChar(text, SUBFIELD_DELIMITER, start + 1, length, 1);
        Py_ssize_t end = next >= 0 ? next : length;
        if (next == -2) {
            Py_CLEAR(values);
            break;
        }
        if (end > start + 1 && PyUnicode_FindChar(codes, PyUnicode_READ_CHAR(text, start + 1), 0, PyUnicode_GET_LENGTH(codes), 1) >= 0) {
            PyObject *value = PyUnicode_Substring(text, start + 2, end);
            if (value == NULL || PyList_Append(values, value) < 0)
                Py_CLEAR(values);
            Py_XDECREF(value);
        }
        start = next;
    }
    return values;
}

/* One name field's name: MARC21 joins its parts with a space and cleans the whole; UNIMARC
 * strips " ," from each part and joins those that are left with ", ". None for no name. */
static PyObject *field_name(PyObject *text, PyObject *codes, int unimarc)
{
    PyObject *parts = subfield_values(text, codes);
    if (parts == NULL)
        return NULL;
    PyObject *name = NULL, *separator = PyUnicode_FromString(unimarc ? ", " : " ");
    if (separator == NULL)
        goto done;
    if (!unimarc) {
        PyObject *joined = PyUnicode_Join(separator, parts);
        name = joined ? clean(NULL, joined) : NULL;
        Py_XDECREF(joined);
        goto done;
    }
    PyObject *kept = PyList_New(0);
    for (Py_ssize_t i = 0; kept != NULL && i < PyList_GET_SIZE(parts); i++) {
        PyObject *part = PyList_GET_ITEM(parts, i);
        PyObject *stripped = strip_chars(part, 0, PyUnicode_GET_LENGTH(part), " ,");
        if (stripped == NULL || (PyUnicode_GET_LENGTH(stripped) > 0 && PyList_Append(kept, stripped) < 0))
            Py_CLEAR(kept);
        Py_XDECREF(stripped);
    }
    name = kept ? PyUnicode_Join(separator, kept) : NULL;
    Py_XDECREF(kept);
done:
    Py_XDECREF(separator);
    Py_DECREF(parts);
    return name;
}

/* names(fields, tags, codes, unimarc) -> list[str]: the names of the fields `tags` (tag after
 * tag, fields in record order) from their subfields `codes`, role words cut, each once. */
static PyObject *names_of(PyObject *fields, PyObject *tags, PyObject *codes, int unimarc)
{
    PyObject *authors = PyList_New(0);
    for (Py_ssize_t t = 0; authors != NULL && t < PyTuple_GET_SIZE(tags); t++) {
        PyObject *texts = PyDict_GetItemWithError(fields, PyTuple_GET_ITEM(tags, t));
        if (texts == NULL) {
            if (PyErr_Occurred())
                Py_CLEAR(authors);
            continue;
        }
        for (Py_ssize_t i = 0; authors != NULL && i < PyList_GET_SIZE(texts); i++) {
            PyObject *text = PyList_GET_ITEM(texts, i);
            PyObject *name = PyUnicode_Check(text) ? field_name(text, codes, unimarc) : NULL;
            if (name == NULL) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "names(): field texts must be str");
                Py_CLEAR(authors);
                break;
            }
            if (name != Py_None && PyUnicode_GET_LENGTH(name) > 0) {
                PyObject *author = strip_role(NULL, name);
                int seen = author ? PySequence_Contains(authors, author) : -1;
                if (seen < 0 || (!seen && PyList_Append(authors, author) < 0))
                    Py_CLEAR(authors);
                Py_XDECREF(author);
            }
            Py_DECREF(name);
        }
    }
    return authors;
}

static PyObject *names(PyObject *module, PyObject *args)
{
    PyObject *fields, *tags, *codes;
    int unimarc;
    if (!PyArg_ParseTuple(args, "O!O!Up", &PyDict_Type, &fields, &PyTuple_Type, &tags, &codes, &unimarc))
        return NULL;
    return names_of(fields, tags, codes, unimarc);
}

/* ---- isbn13: the valid ISBN-13 in a text (transforms/isbn.py) ---- */

static int is_isbn_separator(Py_UCS4 c)
{
    return Py_UNICODE_ISSPACE(c) || c == '-' || c == 0x2010 || c == 0x2011 || c == 0x2013 || c == 0x2014;
}

static int check10(const char *digits)  /* the ISBN-10 check character of 9 digits */
{
    int total = 0;
    for (int i = 0; i < 9; i++)
        total += (digits[i] - '0') * (10 - i);
    int check = (11 - total % 11) % 11;
    return check == 10 ? 'X' : '0' + check;
}

static int check13(const char *digits)  /* the ISBN-13 check digit of 12 digits */
{
    int total = 0;
    for (int i = 0; i < 12; i++)
        total += (digits[i] - '0') * (i % 2 ? 3 : 1);
    return '0' + (10 - total % 10) % 10;
}

/* isbn13(text: str) -> str | None: as isbn.python_to_isbn13 after its NFKC step: separators
 * (white space, dashes) dropped and x read as X, the first candidate (13 digits starting 978 or
 * 979, or 9 digits and a digit or X, not inside a longer run) validated, an ISBN-10 converted. */
static PyObject *isbn13(PyObject *module, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "isbn13() takes a str");
        return NULL;
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(text), size = 0;
    char *compact = PyMem_Malloc(length + 1);
    if (compact == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS4 c = PyUnicode_READ_CHAR(text, i);
        if (!is_isbn_separator(c))  /* anything but a digit or X only separates candidates */
            compact[size++] = (c >= '0' && c <= '9') ? (char)c : (c == 'X' || c == 'x') ? 'X' : '?';
    }
#define DIGIT(k) (compact[k] >= '0' && compact[k] <= '9')
#define ENDS(k) ((k) >= size || !(DIGIT(k) || compact[k] == 'X'))
    char isbn[14] = {0};
    int found = 0;
    for (Py_ssize_t i = 0; i < size && !found; i++) {
        if (i > 0 && DIGIT(i - 1))
            continue;
        Py_ssize_t run = 0;
        while (i + run < size && DIGIT(i + run))
            run++;
        if (run >= 13 && compact[i] == '9' && compact[i + 1] == '7' && (compact[i + 2] == '8' || compact[i + 2] == '9') && ENDS(i + 13)) {
            memcpy(isbn, compact + i, 13);
            found = 13;
        } else if (run >= 9 && i + 9 < size && (DIGIT(i + 9) || compact[i + 9] == 'X') && ENDS(i + 10)) {
            memcpy(isbn, compact + i, 10);
            found = 10;
        }
    }
#undef DIGIT
#undef ENDS
    PyMem_Free(compact);
    if (found == 13 && check13(isbn) == isbn[12])
        return PyUnicode_FromStringAndSize(isbn, 13);
    if (found == 10 && check10(isbn) == isbn[9]) {
        char converted[14] = "978";
        memcpy(converted + 3, isbn, 9);
        converted[12] = (char)check13(converted);
        return PyUnicode_FromStringAndSize(converted, 13);
    }
    Py_RETURN_NONE;
}

/* han_share(text: str) -> float: as encoding.python_han_share, the share of the non-ASCII
 * characters that are CJK ideographs or CJK punctuation (1.0 when there is none). */
static PyObject *han_share(PyObject *module, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "han_share() takes a str");
        return NULL;
    }
    if (PyUnicode_IS_ASCII(text))
        return PyFloat_FromDouble(1.0);
    Py_ssize_t length = PyUnicode_GET_LENGTH(text), non_ascii = 0, han = 0;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 0x80)
            continue;
        non_ascii++;
        if ((c >= 0x3000 && c <= 0x9FFF) || (c >= 0xFF00 && c <= 0xFFEF) || (c >= 0xF900 && c <= 0xFAFF))
            han++;
    }
    return PyFloat_FromDouble(non_ascii ? (double)han / (double)non_ascii : 1.0);
}

/* ---- describe: a MARC record's description (transforms/cnmarc.py, transforms/marc21.py) ----
 *
 * The dict the Python mappings build (bibliographic.description), from a MarcRecord's fields,
 * subfield index and leader. The mapping tables (pick specs, name tags, the Holding class) come
 * from the Python modules in `spec`, so that they are written once. None, for the Python to
 * describe the record, when a number is written with non-ASCII digits, when a title holds
 * UNIMARC's non-sorting markers, or when the leader is short. */

enum {
    K_LOCAL_ID, K_DATESTAMP, K_TITLE, K_SORT_TITLE, K_RESPONSIBILITY, K_AUTHORS, K_MATERIAL_TYPE, K_HOLDINGS,
    K_DATE_TEXT, K_LANGUAGE, K_FIXED, K_COPIES, K_CALL_NUMBER, K_LOCATION, K_CLC, K_SUBJECTS,
    T_001, T_005, T_008, T_200, T_245, T_852, T_905, T_906, T_AVA, T_041A,
    M_ELECTRONIC, M_SERIAL, M_GAZETTEER, M_ANCIENT_BOOK, M_MONOGRAPH, M_OTHER,
    S_EMPTY, S_K29, S_LOCAL_GAZETTEER, S_SEMICOLON,
    NAME_COUNT
};
static const char *const name_texts[NAME_COUNT] = {
    "local_id", "datestamp", "title", "sort_title", "responsibility", "authors", "material_type", "holdings",
    "date_text", "language", "fixed", "copies", "call_number", "location", "clc", "subjects",
    "001", "005", "008", "200", "245", "852", "905", "906", "AVA", "041a",
    "electronic", "serial", "gazetteer", "ancient_book", "monograph", "other",
    "", "K29", "地方志", " ; ",
};
static PyObject *name_objects[NAME_COUNT];
#define NAME(n) (name_objects[n])

static int make_names(void)
{
    for (int i = 0; i < NAME_COUNT; i++)
        if (name_objects[i] == NULL && (name_objects[i] = PyUnicode_InternFromString(name_texts[i])) == NULL)
            return -1;
    return 0;
}

/* A CNMARC gazetteer's title ends with one of these (cnmarc._GAZETTEER_ENDINGS). */
static const char *const gazetteer_endings[] = {"志", "志稿", "志略", "年鉴", NULL};

/* fields[tag][0], borrowed; NULL without an error when the record has no such field. */
static PyObject *first_of(PyObject *fields, PyObject *tag)
{
    PyObject *texts = PyDict_GetItemWithError(fields, tag);
    if (texts == NULL || !PyList_Check(texts) || PyList_GET_SIZE(texts) == 0)
        return NULL;
    return PyList_GET_ITEM(texts, 0);
}

/* text without white space at either end (str.strip()): a new reference. */
static PyObject *stripped(PyObject *text)
{
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t start = 0, end = PyUnicode_GET_LENGTH(text);
    while (start < end && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, start)))
        start++;
    while (end > start && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, end - 1)))
        end--;
    return PyUnicode_Substring(text, start, end);
}

/* MarcRecord.control(tag): the first field's text stripped, None when absent or a data field. */
static PyObject *control_of(PyObject *fields, PyObject *tag)
{
    PyObject *text = first_of(fields, tag);
    if (text == NULL)
        return PyErr_Occurred() ? NULL : (Py_INCREF(Py_None), Py_None);
    Py_ssize_t found = PyUnicode_FindChar(text, SUBFIELD_DELIMITER, 0, PyUnicode_GET_LENGTH(text), 1);
    if (found == -2)
        return NULL;
    return found >= 0 ? (Py_INCREF(Py_None), Py_None) : stripped(text);
}

/* marc.subfield(text, code): the first value of subfield `code`, None without one (or without text). */
static PyObject *subfield_of(PyObject *text, Py_UCS4 code)
{
    if (text == NULL)
        Py_RETURN_NONE;
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    Py_ssize_t start = PyUnicode_FindChar(text, SUBFIELD_DELIMITER, 0, length, 1);
    while (start >= 0) {
        if (start + 1 < length && PyUnicode_READ_CHAR(text, start + 1) == code) {
            Py_ssize_t end = start + 2 <= length ? PyUnicode_FindChar(text, SUBFIELD_DELIMITER, start + 2, length, 1) : -1;
            if (end == -2)
                return NULL;
            return PyUnicode_Substring(text, start + 2, end >= 0 ? end : length);
        }
        start = PyUnicode_FindChar(text, SUBFIELD_DELIMITER, start + 1, length, 1);
    }
    if (start == -2)
        return NULL;
    Py_RETURN_NONE;
}

/* Whether text holds a non-ASCII character that str.isdigit takes for a digit (int() may not read it). */
static int has_other_digits(PyObject *text)
{
    if (PyUnicode_IS_ASCII(text))
        return 0;
    for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(text); i++) {
        Py_UCS4 c = PyUnicode_READ_CHAR(text, i);
        if (c >= 0x80 && Py_UNICODE_ISDIGIT(c))
            return 1;
    }
    return 0;
}

/* cnmarc._int(text): its ASCII digits read as one number, None without any. */
static PyObject *number_of_digits(PyObject *text)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(text), count = 0;
    char *digits = PyMem_Malloc(length + 1);
    if (digits == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS4 c = PyUnicode_READ_CHAR(text, i);
        if (c >= '0' && c <= '9')
            digits[count++] = (char)c;
    }
    digits[count] = 0;
    PyObject *number = count ? PyLong_FromString(digits, NULL, 10) : (Py_INCREF(Py_None), Py_None);
    PyMem_Free(digits);
    return number;
}

/* Set d[key] = value, taking over the reference to value (NULL: an error already set). */
static int set_taken(PyObject *d, PyObject *key, PyObject *value)
{
    if (value == NULL)
        return -1;
    int status = PyDict_SetItem(d, key, value);
    Py_DECREF(value);
    return status;
}

/* The picked dict's `fixed` (100$a, 008), removed from it: a new reference, "" when absent. */
static PyObject *pop_fixed(PyObject *d)
{
    PyObject *fixed = PyDict_GetItemWithError(d, NAME(K_FIXED));
    if (fixed == NULL && PyErr_Occurred())
        return NULL;
    fixed = fixed != NULL && fixed != Py_None ? fixed : NAME(S_EMPTY);
    Py_INCREF(fixed);
    if (PyDict_DelItem(d, NAME(K_FIXED)) < 0)
        PyErr_Clear();  /* not there: nothing to remove */
    return fixed;
}

/* d["date_text"] = d["date_text"] or fixed[start:start + 4]. */
static int date_text_or_fixed(PyObject *d, PyObject *fixed, Py_ssize_t start)
{
    PyObject *date_text = PyDict_GetItemWithError(d, NAME(K_DATE_TEXT));
    if (date_text == NULL && PyErr_Occurred())
        return -1;
    if (date_text != NULL && date_text != Py_None && PyUnicode_GET_LENGTH(date_text) > 0)
        return 0;
    return set_taken(d, NAME(K_DATE_TEXT), PyUnicode_Substring(fixed, start, start + 4));
}

/* The title proper (first field's $a) cleaned, as d["title"]; `*raw` gets the raw $a (a new
 * reference). */
static int set_title(PyObject *d, PyObject *title_field, PyObject **raw)
{
    *raw = subfield_of(title_field, 'a');
    if (*raw == NULL)
        return -1;
    return set_taken(d, NAME(K_TITLE), clean(NULL, *raw));
}

static int holds_non_sorting_marker(PyObject *raw_title)
{
    return raw_title != Py_None && PyUnicode_FindChar(raw_title, 0x88, 0, PyUnicode_GET_LENGTH(raw_title), 1) >= 0;
}

/* cnmarc: the 200 fields' $f $g, each field's joined and cleaned, joined by " ; " (None for none). */
static PyObject *unimarc_responsibility(PyObject *fields, PyObject *spec)
{
    PyObject *texts = PyDict_GetItemWithError(fields, NAME(T_200));
    if (texts == NULL)
        return PyErr_Occurred() ? NULL : (Py_INCREF(Py_None), Py_None);
    PyObject *item = PyTuple_GET_ITEM(spec, 0);
    PyObject *parts = PyList_New(0);
    for (Py_ssize_t i = 0; parts != NULL && i < PyList_GET_SIZE(texts); i++) {
        PyObject *joined = picked(PyList_GET_ITEM(texts, i), PyTuple_GET_ITEM(item, 1), PyLong_AsLong(PyTuple_GET_ITEM(item, 2)),
                                  PyTuple_GET_ITEM(item, 3));
        PyObject *part = joined ? clean(NULL, joined) : NULL;
        Py_XDECREF(joined);
        if (part == NULL || (part != Py_None && PyList_Append(parts, part) < 0))
            Py_CLEAR(parts);
        Py_XDECREF(part);
    }
    if (parts == NULL)
        return NULL;
    PyObject *result = PyList_GET_SIZE(parts) ? PyUnicode_Join(NAME(S_SEMICOLON), parts) : (Py_INCREF(Py_None), Py_None);
    Py_DECREF(parts);
    return result;
}

static int any_starts_with(PyObject *texts, PyObject *prefix)
{
    for (Py_ssize_t i = 0; texts != Py_None && i < PyList_GET_SIZE(texts); i++)
        if (PyUnicode_Tailmatch(PyList_GET_ITEM(texts, i), prefix, 0, PY_SSIZE_T_MAX, -1) == 1)
            return 1;
    return 0;
}

static int any_contains(PyObject *texts, PyObject *part)
{
    for (Py_ssize_t i = 0; texts != Py_None && i < PyList_GET_SIZE(texts); i++)
        if (PyUnicode_Find(PyList_GET_ITEM(texts, i), part, 0, PY_SSIZE_T_MAX, 1) >= 0)
            return 1;
    return 0;
}

static int ends_with_any(PyObject *title, const char *const *endings)
{
    for (int e = 0; title != Py_None && endings[e] != NULL; e++) {
        PyObject *ending = PyUnicode_FromString(endings[e]);
        int found = ending ? PyUnicode_Tailmatch(title, ending, 0, PY_SSIZE_T_MAX, 1) : -1;
        Py_XDECREF(ending);
        if (found != 0)
            return found;
    }
    return 0;
}

/* cnmarc._material_type: a borrowed name; NULL with *declined set when a year has other digits. */
static PyObject *unimarc_material_type(PyObject *leader, PyObject *d, PyObject *fixed, int *declined)
{
    Py_UCS4 type = PyUnicode_READ_CHAR(leader, 6), level = PyUnicode_READ_CHAR(leader, 7);
    if (type == 'l')
        return NAME(M_ELECTRONIC);
    if (level == 's')
        return NAME(M_SERIAL);
    PyObject *title = PyDict_GetItem(d, NAME(K_TITLE));
    PyObject *clc = PyDict_GetItem(d, NAME(K_CLC)), *subjects = PyDict_GetItem(d, NAME(K_SUBJECTS));
    if (title == NULL || clc == NULL || subjects == NULL) {
        PyErr_SetString(PyExc_KeyError, "describe_unimarc: the picked spec lacks clc or subjects");
        return NULL;
    }
    int ending = ends_with_any(title, gazetteer_endings);
    if (ending < 0)
        return NULL;
    if ((ending && any_starts_with(clc, NAME(S_K29))) || any_contains(subjects, NAME(S_LOCAL_GAZETTEER)))
        return NAME(M_GAZETTEER);
    if (type == 'a') {
        Py_ssize_t length = PyUnicode_GET_LENGTH(fixed);
        Py_ssize_t end = length < 13 ? length : 13, year = 0;
        int digits = end > 9;
        for (Py_ssize_t i = 9; i < end; i++) {
            Py_UCS4 c = PyUnicode_READ_CHAR(fixed, i);
            if (c >= 0x80 && Py_UNICODE_ISDIGIT(c)) {
                *declined = 1;
                return NULL;
            }
            digits = digits && c >= '0' && c <= '9';
            year = year * 10 + (Py_ssize_t)(c - '0');
        }
        if (digits && year < 1912)
            return NAME(M_ANCIENT_BOOK);
    }
    return type == 'a' || type == 'b' ? NAME(M_MONOGRAPH) : NAME(M_OTHER);
}

/* cnmarc._holdings: a Holding(call_number, location, copies) per 905, 906 and AVA field. */
static PyObject *unimarc_holdings(PyObject *fields, PyObject *shelf, PyObject *aleph_shelf, PyObject *holding, int *declined)
{
    PyObject *holdings = PyList_New(0);
    int tags[] = {T_905, T_906, T_AVA};
    for (int t = 0; holdings != NULL && t < 3; t++) {
        PyObject *texts = PyDict_GetItemWithError(fields, NAME(tags[t]));
        if (texts == NULL && PyErr_Occurred())
            Py_CLEAR(holdings);
        for (Py_ssize_t i = 0; holdings != NULL && texts != NULL && i < PyList_GET_SIZE(texts); i++) {
            PyObject *taken = pick_from(PyList_GET_ITEM(texts, i), tags[t] == T_AVA ? aleph_shelf : shelf);
            PyObject *copies = taken ? PyDict_GetItem(taken, NAME(K_COPIES)) : NULL;
            PyObject *number = NULL, *made = NULL;
            if (copies != NULL && PyList_GET_SIZE(copies) > 0 && has_other_digits(PyList_GET_ITEM(copies, 0)))
                *declined = 1;
            else if (copies != NULL)
                number = PyList_GET_SIZE(copies) ? number_of_digits(PyList_GET_ITEM(copies, 0)) : (Py_INCREF(Py_None), Py_None);
            if (number != NULL)
                made = PyObject_CallFunctionObjArgs(holding, PyDict_GetItem(taken, NAME(K_CALL_NUMBER)),
                                                    PyDict_GetItem(taken, NAME(K_LOCATION)), number, NULL);
            if (made == NULL || PyList_Append(holdings, made) < 0)
                Py_CLEAR(holdings);
            Py_XDECREF(made);
            Py_XDECREF(number);
            Py_XDECREF(taken);
        }
    }
    return holdings;
}

static int set_controls(PyObject *d, PyObject *fields)
{
    if (set_taken(d, NAME(K_LOCAL_ID), control_of(fields, NAME(T_001))) < 0)
        return -1;
    return set_taken(d, NAME(K_DATESTAMP), control_of(fields, NAME(T_005)));
}

static int spec_ok(PyObject *spec, Py_ssize_t size, PyObject *leader)
{
    if (make_names() < 0)
        return -1;
    if (PyTuple_GET_SIZE(spec) != size || !PyTuple_Check(PyTuple_GET_ITEM(spec, 0))) {
        PyErr_SetString(PyExc_TypeError, "describe: a spec of the wrong shape");
        return -1;
    }
    return PyUnicode_GET_LENGTH(leader) >= LEADER_LENGTH;
}

/* describe_unimarc(fields, index, leader, spec) -> dict | None: cnmarc.python_describe;
 * spec = (picked, responsibility, shelf, Aleph shelf, Holding, name tags, name codes). */
static PyObject *describe_unimarc(PyObject *module, PyObject *args)
{
    PyObject *fields, *index, *leader, *spec, *raw_title = NULL, *fixed = NULL;
    if (!PyArg_ParseTuple(args, "O!O!UO!", &PyDict_Type, &fields, &PyDict_Type, &index, &leader, &PyTuple_Type, &spec))
        return NULL;
    int ok = spec_ok(spec, 7, leader), declined = 0;
    if (ok <= 0)
        return ok < 0 ? NULL : (Py_INCREF(Py_None), Py_None);
    PyObject *d = pick_from(index, PyTuple_GET_ITEM(spec, 0));
    if (d == NULL || (fixed = pop_fixed(d)) == NULL || date_text_or_fixed(d, fixed, 9) < 0)
        goto fail;
    if (set_title(d, first_of(fields, NAME(T_200)), &raw_title) < 0)
        goto fail;
    if (holds_non_sorting_marker(raw_title))
        goto declined;
    if (PyDict_SetItem(d, NAME(K_SORT_TITLE), PyDict_GetItem(d, NAME(K_TITLE))) < 0
        || set_taken(d, NAME(K_RESPONSIBILITY), unimarc_responsibility(fields, PyTuple_GET_ITEM(spec, 1))) < 0
        || set_taken(d, NAME(K_AUTHORS), names_of(fields, PyTuple_GET_ITEM(spec, 5), PyTuple_GET_ITEM(spec, 6), 1)) < 0)
        goto fail;
    PyObject *material = unimarc_material_type(leader, d, fixed, &declined);
    if (material == NULL)
        goto maybe_declined;
    PyObject *holdings = PyDict_SetItem(d, NAME(K_MATERIAL_TYPE), material) < 0 ? NULL :
        unimarc_holdings(fields, PyTuple_GET_ITEM(spec, 2), PyTuple_GET_ITEM(spec, 3), PyTuple_GET_ITEM(spec, 4), &declined);
    if (holdings == NULL)
        goto maybe_declined;
    if (set_taken(d, NAME(K_HOLDINGS), holdings) < 0 || set_controls(d, fields) < 0)
        goto fail;
    Py_DECREF(raw_title);
    Py_DECREF(fixed);
    return d;
maybe_declined:
    if (!declined)
        goto fail;
declined:
    PyErr_Clear();
    Py_XDECREF(d);
    Py_XDECREF(raw_title);
    Py_XDECREF(fixed);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(d);
    Py_XDECREF(raw_title);
    Py_XDECREF(fixed);
    return NULL;
}

/* marc21._nonfiling: 245 ind2 as a number (0 when not a digit); -1 for a non-ASCII digit. */
static Py_ssize_t nonfiling_characters(PyObject *title_field)
{
    if (title_field == NULL)
        return 0;
    Py_ssize_t length = PyUnicode_GET_LENGTH(title_field);
    Py_ssize_t head = PyUnicode_FindChar(title_field, SUBFIELD_DELIMITER, 0, length, 1);
    if (head < 0)
        head = length;
    if (head < 2)
        return 0;
    Py_UCS4 c = PyUnicode_READ_CHAR(title_field, 1);
    if (c >= '0' && c <= '9')
        return c - '0';
    return c >= 0x80 && Py_UNICODE_ISDIGIT(c) ? -1 : 0;
}

/* bibliographic.sorting_title for a title without non-sorting markers: the title, or the raw
 * title without its first `nonfiling` characters, cleaned. */
static PyObject *sorting_title_of(PyObject *raw_title, PyObject *title, Py_ssize_t nonfiling)
{
    if (raw_title == Py_None || nonfiling == 0) {
        Py_INCREF(title);
        return title;
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(raw_title);
    PyObject *rest = nonfiling < length ? PyUnicode_Substring(raw_title, nonfiling, length) : (Py_INCREF(raw_title), raw_title);
    PyObject *result = rest ? clean(NULL, rest) : NULL;
    Py_XDECREF(rest);
    return result;
}

/* marc21._language: 008/35-37 stripped, else the first 041 $a cleaned. */
static PyObject *marc21_language(PyObject *fixed, PyObject *index)
{
    PyObject *code = PyUnicode_Substring(fixed, 35, 38);
    PyObject *result = code ? stripped(code) : NULL;
    Py_XDECREF(code);
    if (result == NULL || PyUnicode_GET_LENGTH(result) > 0)
        return result;
    Py_DECREF(result);
    PyObject *values = PyDict_GetItemWithError(index, NAME(T_041A));
    if (values == NULL || PyList_GET_SIZE(values) == 0)
        return PyErr_Occurred() ? NULL : (Py_INCREF(Py_None), Py_None);
    return clean(NULL, PyList_GET_ITEM(values, 0));
}

/* marc21._material_type: a borrowed name. */
static PyObject *marc21_material_type(PyObject *leader, PyObject *fixed)
{
    Py_UCS4 type = PyUnicode_READ_CHAR(leader, 6), level = PyUnicode_READ_CHAR(leader, 7);
    Py_UCS4 form = PyUnicode_GET_LENGTH(fixed) > 23 ? PyUnicode_READ_CHAR(fixed, 23) : 0;
    int textual = type == 'a' || type == 't';
    if (type == 'm' || (textual && (form == 'o' || form == 's' || form == 'q')))
        return NAME(M_ELECTRONIC);
    if (!textual)
        return NAME(M_OTHER);
    if (level == 'm' || level == 'a' || level == 'c')
        return NAME(M_MONOGRAPH);
    return level == 's' || level == 'i' ? NAME(M_SERIAL) : NAME(M_OTHER);
}

/* marc21.holdings: a Holding(**picked) per 852 field. */
static PyObject *marc21_holdings(PyObject *fields, PyObject *shelf, PyObject *holding)
{
    PyObject *texts = PyDict_GetItemWithError(fields, NAME(T_852));
    if (texts == NULL && PyErr_Occurred())
        return NULL;
    PyObject *holdings = PyList_New(0), *no_arguments = PyTuple_New(0);
    for (Py_ssize_t i = 0; holdings != NULL && no_arguments != NULL && texts != NULL && i < PyList_GET_SIZE(texts); i++) {
        PyObject *taken = pick_from(PyList_GET_ITEM(texts, i), shelf);
        PyObject *made = taken ? PyObject_Call(holding, no_arguments, taken) : NULL;
        if (made == NULL || PyList_Append(holdings, made) < 0)
            Py_CLEAR(holdings);
        Py_XDECREF(made);
        Py_XDECREF(taken);
    }
    if (no_arguments == NULL)
        Py_CLEAR(holdings);
    Py_XDECREF(no_arguments);
    return holdings;
}

/* describe_marc21(fields, index, leader, spec) -> dict | None: marc21.python_describe;
 * spec = (picked, shelf, Holding, name tags, name codes). */
static PyObject *describe_marc21(PyObject *module, PyObject *args)
{
    PyObject *fields, *index, *leader, *spec, *raw_title = NULL, *fixed = NULL;
    if (!PyArg_ParseTuple(args, "O!O!UO!", &PyDict_Type, &fields, &PyDict_Type, &index, &leader, &PyTuple_Type, &spec))
        return NULL;
    int ok = spec_ok(spec, 5, leader);
    if (ok <= 0)
        return ok < 0 ? NULL : (Py_INCREF(Py_None), Py_None);
    PyObject *title_field = first_of(fields, NAME(T_245));
    Py_ssize_t nonfiling = nonfiling_characters(title_field);
    if (nonfiling < 0 || PyErr_Occurred())
        return PyErr_Occurred() ? NULL : (Py_INCREF(Py_None), Py_None);
    PyObject *d = pick_from(index, PyTuple_GET_ITEM(spec, 0));
    if (d == NULL || set_title(d, title_field, &raw_title) < 0)
        goto fail;
    if (holds_non_sorting_marker(raw_title)) {
        Py_DECREF(d);
        Py_DECREF(raw_title);
        Py_RETURN_NONE;
    }
    fixed = control_of(fields, NAME(T_008));
    if (fixed == Py_None) {
        Py_SETREF(fixed, NAME(S_EMPTY));
        Py_INCREF(fixed);
    }
    if (fixed == NULL || date_text_or_fixed(d, fixed, 7) < 0
        || set_taken(d, NAME(K_SORT_TITLE), sorting_title_of(raw_title, PyDict_GetItem(d, NAME(K_TITLE)), nonfiling)) < 0
        || set_taken(d, NAME(K_AUTHORS), names_of(fields, PyTuple_GET_ITEM(spec, 3), PyTuple_GET_ITEM(spec, 4), 0)) < 0
        || set_taken(d, NAME(K_LANGUAGE), marc21_language(fixed, index)) < 0
        || PyDict_SetItem(d, NAME(K_MATERIAL_TYPE), marc21_material_type(leader, fixed)) < 0
        || set_taken(d, NAME(K_HOLDINGS), marc21_holdings(fields, PyTuple_GET_ITEM(spec, 1), PyTuple_GET_ITEM(spec, 2))) < 0
        || set_controls(d, fields) < 0)
        goto fail;
    Py_DECREF(raw_title);
    Py_DECREF(fixed);
    return d;
fail:
    Py_XDECREF(d);
    Py_XDECREF(raw_title);
    Py_XDECREF(fixed);
    return NULL;
}

/* ---- row: a description → the canonical `records` row (bibliographic.python_to_row) ---- */

enum { ROW_ISBN13, ROW_ISSN, ROW_YEAR, ROW_PAGES, ROW_TITLE_KEY, ROW_PINYIN_KEY, ROW_AUTHOR_KEY, ROW_PUBLISHER_KEY, ROW_FUNCTIONS };

/* The interned str of a name given as a C string literal: made once, kept by the call site. */
#define NAMED(text) __extension__ ({ static PyObject *slot_; slot_ != NULL ? slot_ : (slot_ = PyUnicode_InternFromString(text)); })

/* description[key], borrowed; NULL with a KeyError when missing. */
#define described(description, key) described_as(description, NAMED(key), key)

static PyObject *described_as(PyObject *description, PyObject *name, const char *key)
{
    if (name == NULL)
        return NULL;
    PyObject *value = PyDict_GetItemWithError(description, name);
    if (value == NULL && !PyErr_Occurred())
        PyErr_Format(PyExc_KeyError, "a description without %s", key);
    return value;
}

/* row[key] = value, taking over the reference to value; 0, or -1 (value NULL: an error set). */
static int put_as(PyObject *row, PyObject *key, PyObject *value)
{
    if (value == NULL)
        return -1;
    int status = key ? PyDict_SetItem(row, key, value) : -1;
    Py_DECREF(value);
    return status;
}
#define put(row, name, value) put_as(row, NAMED(name), value)

/* put() of a borrowed value. */
static int put_borrowed_as(PyObject *row, PyObject *key, PyObject *value)
{
    Py_XINCREF(value);
    return put_as(row, key, value);
}
#define put_borrowed(row, name, value) put_borrowed_as(row, NAMED(name), value)

#define append_flag(flags, flag) append_named(flags, NAMED(flag))

static int append_named(PyObject *flags, PyObject *text)
{
    return text ? PyList_Append(flags, text) : -1;
}

/* The valid ISBN-13s of the raw ISBNs, each once; "invalid_isbn" flagged for each that has none. */
static PyObject *isbn13s_of(PyObject *raws, PyObject *to_isbn13, PyObject *flags)
{
    PyObject *isbns = PyList_New(0);
    for (Py_ssize_t i = 0; isbns != NULL && i < PyList_GET_SIZE(raws); i++) {
        PyObject *isbn = PyObject_CallOneArg(to_isbn13, PyList_GET_ITEM(raws, i));
        int status = isbn == NULL ? -1 : isbn == Py_None ? append_flag(flags, "invalid_isbn") : PySequence_Contains(isbns, isbn);
        if (status == 0 && isbn != Py_None)
            status = PyList_Append(isbns, isbn);
        if (status < 0)
            Py_CLEAR(isbns);
        Py_XDECREF(isbn);
    }
    return isbns;
}

/* [issn for issn in map(normalise_issn, raws) if issn] */
static PyObject *issns_of(PyObject *raws, PyObject *normalise_issn)
{
    PyObject *issns = PyList_New(0);
    for (Py_ssize_t i = 0; issns != NULL && i < PyList_GET_SIZE(raws); i++) {
        PyObject *issn = PyObject_CallOneArg(normalise_issn, PyList_GET_ITEM(raws, i));
        int truth = issn ? PyObject_IsTrue(issn) : -1;
        if (truth < 0 || (truth && PyList_Append(issns, issn) < 0))
            Py_CLEAR(issns);
        Py_XDECREF(issn);
    }
    return issns;
}

/* sorted(set(flags)) when there are several, else the flags. */
static PyObject *quality_flags(PyObject *flags)
{
    if (PyList_GET_SIZE(flags) < 2) {
        Py_INCREF(flags);
        return flags;
    }
    PyObject *unique = PySet_New(flags);
    PyObject *result = unique ? PySequence_List(unique) : NULL;
    Py_XDECREF(unique);
    if (result != NULL && PyList_Sort(result) < 0)
        Py_CLEAR(result);
    return result;
}

/* row(description, library_id, source_format, flags, functions) -> dict: as bibliographic.python_to_row;
 * functions = (to_isbn13, normalise_issn, parse_year, parse_pages, title_key, pinyin_key, author_key,
 * publisher_key), the Python key functions and their caches. */
static PyObject *row(PyObject *module, PyObject *args)
{
    PyObject *d, *library_id, *source_format, *given_flags, *functions;
    if (!PyArg_ParseTuple(args, "O!UOOO!", &PyDict_Type, &d, &library_id, &source_format, &given_flags, &PyTuple_Type, &functions))
        return NULL;
    if (PyTuple_GET_SIZE(functions) != ROW_FUNCTIONS) {
        PyErr_SetString(PyExc_TypeError, "row(): functions of the wrong shape");
        return NULL;
    }
#define FUNCTION(n) PyTuple_GET_ITEM(functions, n)
    PyObject *isbn_raw = described(d, "isbn_raw"), *issn_raw = described(d, "issn_raw"), *title = described(d, "title");
    PyObject *date_text = described(d, "date_text"), *local_id = described(d, "local_id"), *authors = described(d, "authors");
    PyObject *sort_title = described(d, "sort_title"), *subtitle = described(d, "subtitle"), *publisher = described(d, "publisher");
    PyObject *extent = described(d, "extent");
    if (PyErr_Occurred())
        return NULL;
    if (!PyList_Check(isbn_raw) || !PyList_Check(issn_raw) || !PyList_Check(authors)) {
        PyErr_SetString(PyExc_TypeError, "row(): isbn_raw, issn_raw and authors must be lists");
        return NULL;
    }
    PyObject *flags = PySequence_List(given_flags), *result = NULL, *isbns = NULL, *year = NULL, *key = NULL;
    if (flags == NULL || (isbns = isbn13s_of(isbn_raw, FUNCTION(ROW_ISBN13), flags)) == NULL)
        goto done;
    int has_title = PyObject_IsTrue(title);
    if (has_title < 0 || (!has_title && append_flag(flags, "no_title") < 0))
        goto done;
    if ((year = PyObject_CallOneArg(FUNCTION(ROW_YEAR), date_text)) == NULL || (year == Py_None && append_flag(flags, "no_year") < 0))
        goto done;
    int has_sort_title = PyObject_IsTrue(sort_title);
    if (has_sort_title < 0)
        goto done;
    if (!has_sort_title)
        sort_title = title;
    PyObject *first_author = PyList_GET_SIZE(authors) ? PyList_GET_ITEM(authors, 0) : Py_None;
    if ((key = PyObject_CallFunctionObjArgs(FUNCTION(ROW_TITLE_KEY), sort_title, subtitle, NULL)) == NULL)
        goto done;
    int has_key = PyObject_IsTrue(key);
    if (has_key < 0)
        goto done;
    if (!has_key)
        Py_SETREF(key, PyUnicode_FromFormat("no-title:%U:%S", library_id, local_id));
    PyObject *row = key == NULL ? NULL : _PyDict_NewPresized(33);
    if (row == NULL)
        goto done;
    if (put(row, "record_key", PyUnicode_FromFormat("%U:%S", library_id, local_id)) < 0
        || put_borrowed(row, "library_id", library_id) < 0
        || put_borrowed(row, "local_id", local_id) < 0
        || put_borrowed(row, "status", NAMED("active")) < 0
        || put_borrowed(row, "source_format", source_format) < 0
        || put_borrowed(row, "datestamp", described(d, "datestamp")) < 0
        || put_borrowed(row, "isbn", isbns) < 0
        || put_borrowed(row, "isbn_raw", isbn_raw) < 0
        || put(row, "issn", PyList_GET_SIZE(issn_raw) ? issns_of(issn_raw, FUNCTION(ROW_ISSN)) : PyList_New(0)) < 0
        || put_borrowed(row, "title", title) < 0
        || put_borrowed(row, "subtitle", subtitle) < 0
        || put_borrowed(row, "part_number", described(d, "part_number")) < 0
        || put_borrowed(row, "part_name", described(d, "part_name")) < 0
        || put_borrowed(row, "responsibility", described(d, "responsibility")) < 0
        || put_borrowed(row, "authors", authors) < 0
        || put_borrowed(row, "edition", described(d, "edition")) < 0
        || put_borrowed(row, "publisher", publisher) < 0
        || put_borrowed(row, "place", described(d, "place")) < 0
        || put_borrowed(row, "year", year) < 0
        || put(row, "pages", PyObject_CallOneArg(FUNCTION(ROW_PAGES), extent)) < 0
        || put_borrowed(row, "language", described(d, "language")) < 0
        || put_borrowed(row, "material_type", described(d, "material_type")) < 0
        || put_borrowed(row, "clc", described(d, "clc")) < 0
        || put_borrowed(row, "subjects", described(d, "subjects")) < 0
        || put_borrowed(row, "series", described(d, "series")) < 0
        || put_borrowed(row, "title_key", key) < 0
        || put(row, "title_pinyin", PyObject_CallOneArg(FUNCTION(ROW_PINYIN_KEY), sort_title)) < 0
        || put(row, "author_key", PyObject_CallOneArg(FUNCTION(ROW_AUTHOR_KEY), first_author)) < 0
        || put(row, "publisher_key", PyObject_CallOneArg(FUNCTION(ROW_PUBLISHER_KEY), publisher)) < 0
        || put(row, "quality_flags", quality_flags(flags)) < 0)
        Py_DECREF(row);
    else
        result = row;
#undef FUNCTION
done:
    Py_XDECREF(flags);
    Py_XDECREF(isbns);
    Py_XDECREF(year);
    Py_XDECREF(key);
    return result;
}

/* is_utf8(data: bytes) -> bool: whether data.decode("utf-8") succeeds (strict UTF-8: no
 * overlong forms, no surrogates, nothing above U+10FFFF), without making the text. */
static PyObject *is_utf8(PyObject *module, PyObject *data)
{
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "is_utf8() takes bytes");
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(data), *end = p + PyBytes_GET_SIZE(data);
    while (p < end) {
        unsigned char c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        Py_ssize_t left = end - p;
        if (c >= 0xC2 && c <= 0xDF) {
            if (left < 2 || (p[1] & 0xC0) != 0x80)
                Py_RETURN_FALSE;
            p += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            unsigned char low = c == 0xE0 ? 0xA0 : 0x80, high = c == 0xED ? 0x9F : 0xBF;
            if (left < 3 || p[1] < low || p[1] > high || (p[2] & 0xC0) != 0x80)
                Py_RETURN_FALSE;
            p += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            unsigned char low = c == 0xF0 ? 0x90 : 0x80, high = c == 0xF4 ? 0x8F : 0xBF;
            if (left < 4 || p[1] < low || p[1] > high || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
                Py_RETURN_FALSE;
            p += 4;
        } else {
            Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

/* unimarc_charset(field: bytes) -> str | None: as encoding.python_unimarc_charset, the character
 * sets a UNIMARC 100 field declares: positions 26-29 of the first $a long enough to hold them. */
static PyObject *unimarc_charset(PyObject *module, PyObject *field)
{
    if (!PyBytes_Check(field)) {
        PyErr_SetString(PyExc_TypeError, "unimarc_charset() takes bytes");
        return NULL;
    }
    const char *data = PyBytes_AS_STRING(field);
    Py_ssize_t size = PyBytes_GET_SIZE(field);
    const char *chunk = memchr(data, SUBFIELD_DELIMITER, size);
    while (chunk != NULL) {
        chunk++;  /* past the delimiter: the code, then the value */
        const char *next = memchr(chunk, SUBFIELD_DELIMITER, data + size - chunk);
        Py_ssize_t length = (next ? next : data + size) - chunk;
        if (length >= 31 && chunk[0] == 'a')
            return PyUnicode_DecodeLatin1(chunk + 27, 4, NULL);
        chunk = next;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"han_share", han_share, METH_O, "han_share(text) -> float: the share of non-ASCII characters that are Han or CJK punctuation"},
    {"split_record", split_record, METH_O, "split_record(record) -> (leader, tags, datas) | None: a well-formed ISO 2709 record's parts"},
    {"split_fields", split_fields, METH_O, "split_fields(record) -> (tags, datas) | None: the fields of a well-formed ISO 2709 record"},
    {"decode_fields", decode_fields, METH_VARARGS,
     "decode_fields(tags, datas, wanted, codec, errors) -> (fields, by_subfield) | None: decode the wanted fields"},
    {"clean", clean, METH_O, "clean(value) -> str | None: a subfield value trimmed for display"},
    {"strip_role", strip_role, METH_O, "strip_role(name) -> str: a name without the role words at its end"},
    {"names", names, METH_VARARGS, "names(fields, tags, codes, unimarc) -> list[str]: the authors of name fields"},
    {"isbn13", isbn13, METH_O, "isbn13(text) -> str | None: the valid ISBN-13 in a text, an ISBN-10 converted"},
    {"pick", pick, METH_VARARGS, "pick(index, spec) -> dict: canonical fields taken from the subfield index"},
    {"pick_in_field", pick_in_field, METH_VARARGS, "pick_in_field(text, spec) -> dict: canonical fields taken from one data field"},
    {"describe_unimarc", describe_unimarc, METH_VARARGS,
     "describe_unimarc(fields, index, leader, spec) -> dict | None: a CNMARC/UNIMARC record's description"},
    {"describe_marc21", describe_marc21, METH_VARARGS, "describe_marc21(fields, index, leader, spec) -> dict | None: a MARC21 record's description"},
    {"row", row, METH_VARARGS, "row(description, library_id, source_format, flags, functions) -> dict: the canonical row"},
    {"unimarc_charset", unimarc_charset, METH_O, "unimarc_charset(field) -> str | None: the character sets 100 $a/26-29 declares"},
    {"is_utf8", is_utf8, METH_O, "is_utf8(data) -> bool: whether the bytes are valid UTF-8 (as bytes.decode checks it)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "transforms._speedups", NULL, -1, methods};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }

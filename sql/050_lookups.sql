-- Lookups for analysts and the CLI: a book by ISBN, and who holds a manifestation.

-- ISBNs as people type them: ISBN-10 or -13, with or without hyphens.
CREATE MACRO isbn_digits(raw) AS upper(regexp_replace(raw, '[^0-9Xx]', '', 'g'));
CREATE MACRO isbn13_check_digit(first12) AS CAST(
    (10 - list_sum(list_transform(string_split(first12, ''),
                                  lambda d, i: CAST(d AS INTEGER) * CASE WHEN i % 2 = 1 THEN 1 ELSE 3 END)) % 10) % 10
    AS VARCHAR);
CREATE MACRO isbn13(raw) AS CASE length(isbn_digits(raw))
    WHEN 13 THEN isbn_digits(raw)
    WHEN 10 THEN '978' || left(isbn_digits(raw), 9) || isbn13_check_digit('978' || left(isbn_digits(raw), 9))
END;

CREATE MACRO find_isbn(isbn) AS TABLE
SELECT DISTINCT m.*
FROM records r
JOIN record_manifestation rm USING (record_key)
JOIN manifestations m USING (manifestation_id)
WHERE list_contains(r.isbn, isbn13(isbn));

-- Province library first, then city, then county libraries.
CREATE MACRO holders(mid) AS TABLE
SELECT d.library_id, l.name, d.city, d.level, d.copies
FROM holdings_distribution d
JOIN libraries l USING (library_id)
WHERE d.manifestation_id = mid
ORDER BY CASE d.level WHEN 'province' THEN 0 WHEN 'city' THEN 1 ELSE 2 END, d.library_id;

-- Lookups for analysts and the CLI: a book by ISBN, and who holds a manifestation.

-- ISBNs as people type them: ISBN-10 or -13, with or without hyphens.
CREATE OR REPLACE MACRO isbn_digits(raw) AS upper(regexp_replace(raw, '[^0-9Xx]', '', 'g'));
CREATE OR REPLACE MACRO isbn13_check_digit(first12) AS CAST(
    (10 - list_sum(list_transform(string_split(first12, ''),
                                  lambda d, i: CAST(d AS INTEGER) * CASE WHEN i % 2 = 1 THEN 1 ELSE 3 END)) % 10) % 10
    AS VARCHAR);
CREATE OR REPLACE MACRO isbn13(raw) AS CASE length(isbn_digits(raw))
    WHEN 13 THEN isbn_digits(raw)
    WHEN 10 THEN '978' || left(isbn_digits(raw), 9) || isbn13_check_digit('978' || left(isbn_digits(raw), 9))
END;

-- Kept by a catalogue copied from the parent snapshot's, brought up to date from the records
-- that changed or moved (warehouse.catalogue).
CREATE TABLE IF NOT EXISTS isbn_index AS
WITH pairs AS (
    SELECT DISTINCT unnest(r.isbn) AS isbn13, rm.manifestation_id
    FROM records r
    JOIN record_manifestation rm USING (record_key)
)
SELECT isbn13 AS isbn, manifestation_id FROM pairs ORDER BY isbn, manifestation_id;
COMMENT ON TABLE isbn_index IS 'Every valid ISBN-13 of the records of each manifestation (a manifestation''s golden isbn is one of them); sorted by isbn when built afresh.';

-- Sorted by isbn (but for the rows a copy added since it was built afresh), the index answers
-- from a few row groups; most held first.
CREATE OR REPLACE MACRO find_isbn(typed) AS TABLE
SELECT m.*
FROM manifestations m
WHERE m.manifestation_id IN (SELECT i.manifestation_id FROM isbn_index i WHERE i.isbn = isbn13(typed))
ORDER BY m.n_libraries DESC, m.manifestation_id;
COMMENT ON MACRO TABLE find_isbn IS 'find_isbn(isbn): the manifestations with this ISBN, typed as ISBN-10 or -13, hyphens or not; most held first.';

-- Province library first, then city, then county libraries.
CREATE OR REPLACE MACRO holders(mid) AS TABLE
SELECT d.library_id, l.name, d.city, d.level, d.copies
FROM holdings_distribution d
JOIN libraries l USING (library_id)
WHERE d.manifestation_id = mid
ORDER BY CASE d.level WHEN 'province' THEN 0 WHEN 'city' THEN 1 ELSE 2 END, d.library_id;
COMMENT ON MACRO TABLE holders IS 'holders(manifestation_id): the libraries holding a manifestation with city, level and copies; province, then city, then county.';

-- Title search that works for Chinese without word segmentation.
--
-- Terms: every pair of adjacent Han characters (a character bigram) and every
-- Western word, lower-cased. A Chinese substring of two or more characters is
-- found because all its bigrams are in the title; a Western title by its words.
-- The index holds the terms of title, subtitle, part name and authors as
-- written, plus the bigrams of the normalised title key (simplified
-- characters: a simplified query finds a title catalogued in traditional).

CREATE OR REPLACE MACRO han_bigrams(text) AS flatten(list_transform(
    regexp_extract_all(lower(coalesce(text, '')), '\p{Han}{2,}'),
    lambda run: list_transform(range(1, length(run)), lambda i: substr(run, i, 2))));
CREATE OR REPLACE MACRO western_words(text) AS
    regexp_extract_all(lower(coalesce(text, '')), '[^\p{Han}\p{P}\p{S}\p{Z}\p{C}]+');
CREATE OR REPLACE MACRO search_terms(text) AS list_distinct(han_bigrams(text) || western_words(text));
CREATE OR REPLACE MACRO manifestation_terms(title, subtitle, part_name, authors, title_key) AS list_distinct(
    search_terms(concat_ws(' ', title, subtitle, part_name, array_to_string(authors, ' '))) || han_bigrams(title_key));

-- When absent: a catalogue copied from the parent snapshot has it, brought up to date for the
-- manifestations that changed by warehouse.catalogue.
CREATE TABLE IF NOT EXISTS search_index AS
SELECT DISTINCT unnest(manifestation_terms(title, subtitle, part_name, authors, title_key)) AS term, manifestation_id
FROM manifestations
ORDER BY term, manifestation_id;
COMMENT ON TABLE search_index IS 'Search terms (Han character bigrams, lower-case Western words) of each manifestation''s title, subtitle, part name, authors and title key; sorted by term.';

-- Ranked by the share of the query's terms a manifestation has (score), then
-- the query as a phrase in the title, then how many libraries hold it. Only
-- the best-scoring manifestations are returned: those with every term when
-- there are any, else the closest, if they have at least half of the terms.
-- A query with no term (one character, only punctuation) is matched as a
-- substring of title and subtitle.
CREATE OR REPLACE MACRO search(text) AS TABLE
WITH query AS (SELECT unnest(search_terms(text)) AS term),
wanted AS (SELECT count(*) AS n FROM query),
scored AS (
    SELECT i.manifestation_id, count(*) / any_value(w.n) AS score
    FROM search_index i JOIN query q USING (term), wanted w
    GROUP BY i.manifestation_id
    UNION ALL
    SELECT m.manifestation_id, 1.0
    FROM manifestations m
    -- on the query itself, not on `wanted`: a constant the planner folds, so a query with terms
    -- never scans every manifestation's title
    WHERE len(search_terms(text)) = 0 AND trim(text) <> ''
      AND contains(lower(concat_ws(' ', m.title, m.subtitle)), lower(trim(text)))
),
best AS (SELECT max(score) AS score FROM scored)
SELECT m.manifestation_id, m.title, m.subtitle, m.part_number, m.edition, m.publisher, m.year, m.isbn,
       m.n_libraries, round(s.score, 3) AS score
FROM scored s
JOIN best b ON s.score = b.score AND s.score >= 0.5
JOIN manifestations m USING (manifestation_id)
ORDER BY s.score DESC, contains(lower(m.title), lower(trim(text))) DESC, m.n_libraries DESC,
         length(m.title), m.manifestation_id;
COMMENT ON MACRO TABLE search IS 'search(text): manifestations whose title, subtitle, part name or authors hold the query''s Han character pairs and Western words, best first (score, phrase in title, libraries holding).';

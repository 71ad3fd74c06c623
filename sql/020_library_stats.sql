-- Per-library figures: how much each library contributes, how much of it
-- nobody else in the province holds, and how much two libraries share.

-- Tables, not views: they aggregate the whole of holdings_distribution and a
-- snapshot never changes, so they are computed once, when the catalogue is built
-- (as a view, library_stats took 0.6 s a query at 1M records).
CREATE OR REPLACE TABLE library_stats AS
WITH spread AS (
    SELECT manifestation_id, count(DISTINCT library_id) AS n_libraries
    FROM holdings_distribution
    GROUP BY manifestation_id
)
SELECT
    l.library_id,
    l.name,
    l.city,
    l.level,
    (SELECT count(*) FROM records r WHERE r.library_id = l.library_id) AS records,
    count(DISTINCT d.manifestation_id) AS manifestations,
    count(DISTINCT d.manifestation_id) FILTER (WHERE s.n_libraries = 1) AS unique_holdings,
    round(1 - count(DISTINCT d.manifestation_id) FILTER (WHERE s.n_libraries = 1)
              / greatest(count(DISTINCT d.manifestation_id), 1), 4) AS share_held_elsewhere,
    (SELECT count(*) FROM quarantine q WHERE q.library_id = l.library_id) AS quarantined
FROM libraries l
LEFT JOIN holdings_distribution d USING (library_id)
LEFT JOIN spread s USING (manifestation_id)
GROUP BY ALL
ORDER BY l.library_id;
COMMENT ON TABLE library_stats IS 'Per library: records, manifestations held, unique holdings (held by no other library), share of its manifestations held elsewhere, quarantined records.';

-- The self-join of holdings_distribution: the costliest query in the catalogue. It joins the
-- distinct (manifestation, library) pairs, so that a pair of libraries is counted with count(*)
-- rather than count(DISTINCT …) over every copy (6x faster at 1M records).
CREATE OR REPLACE TABLE library_overlap AS
WITH holder AS (
    SELECT DISTINCT manifestation_id, library_id FROM holdings_distribution
),
held AS (
    SELECT library_id, count(*) AS held FROM holder GROUP BY ALL
),
shared AS (
    SELECT a.library_id AS library_a, b.library_id AS library_b, count(*) AS shared
    FROM holder a
    JOIN holder b ON a.manifestation_id = b.manifestation_id AND a.library_id <> b.library_id
    GROUP BY ALL
)
SELECT
    a.library_id AS library_a,
    b.library_id AS library_b,
    coalesce(ha.held, 0) AS held_a,
    coalesce(hb.held, 0) AS held_b,
    coalesce(s.shared, 0) AS shared,
    round(coalesce(s.shared, 0) / greatest(coalesce(ha.held, 0) + coalesce(hb.held, 0) - coalesce(s.shared, 0), 1), 4) AS jaccard,
    round(coalesce(s.shared, 0) / greatest(coalesce(ha.held, 0), 1), 4) AS share_of_a_held_by_b
FROM libraries a
JOIN libraries b ON a.library_id <> b.library_id
LEFT JOIN held ha ON ha.library_id = a.library_id
LEFT JOIN held hb ON hb.library_id = b.library_id
LEFT JOIN shared s ON s.library_a = a.library_id AND s.library_b = b.library_id
ORDER BY library_a, library_b;
COMMENT ON TABLE library_overlap IS 'Every ordered pair of libraries (each pair twice, once from each side): manifestations each holds, how many both hold, Jaccard similarity (shared / held by either), and the share of library_a''s manifestations library_b also holds.';

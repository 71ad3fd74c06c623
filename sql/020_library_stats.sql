-- Per-library totals: how much each library contributes and how much of it
-- nobody else in the province holds.

CREATE VIEW library_stats AS
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
COMMENT ON VIEW library_stats IS 'Per library: records, manifestations held, unique holdings (held by no other library), share of its manifestations held elsewhere, quarantined records.';

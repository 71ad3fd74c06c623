-- The catalogue's base tables, loaded from the snapshot's Parquet files when absent: a catalogue
-- copied from the parent snapshot has them already, brought up to date by warehouse.catalogue.
-- Relative paths resolve against the snapshot folder (file_search_path).
-- records, holdings and quarantine are folders with one Parquet file per library.

CREATE TABLE IF NOT EXISTS libraries AS SELECT * FROM read_parquet('libraries.parquet');
COMMENT ON TABLE libraries IS 'The harvested libraries: id, Chinese name, city, level (province/city/county), protocol and the run whose data is in this snapshot.';

CREATE TABLE IF NOT EXISTS records AS SELECT * EXCLUDE (raw) FROM read_parquet('records.parquet/*.parquet');
COMMENT ON TABLE records IS 'One row per library catalogue record in canonical form (source bytes are in records.parquet/<library>.parquet, column raw).';

CREATE TABLE IF NOT EXISTS holdings AS SELECT * FROM read_parquet('holdings.parquet/*.parquet');
COMMENT ON TABLE holdings IS 'Local holdings (call number, location, copies) of each record, as the library reported them.';

CREATE TABLE IF NOT EXISTS manifestations AS SELECT * FROM read_parquet('manifestations.parquet');
COMMENT ON TABLE manifestations IS 'One row per manifestation (one edition of one book) with golden fields and how many records and libraries it has.';

CREATE TABLE IF NOT EXISTS record_manifestation AS SELECT * FROM read_parquet('record_manifestation.parquet');
COMMENT ON TABLE record_manifestation IS 'Which manifestation each record belongs to, with the match rule and score that put it there.';

CREATE TABLE IF NOT EXISTS holdings_distribution AS SELECT * FROM read_parquet('holdings_distribution.parquet');
COMMENT ON TABLE holdings_distribution IS 'For each manifestation, each library that holds it, with city, level and copies.';

CREATE TABLE IF NOT EXISTS works AS SELECT * FROM read_parquet('works.parquet');
COMMENT ON TABLE works IS 'Works: the editions and translations of one work grouped by normalised title and author (other editions of a book).';

CREATE TABLE IF NOT EXISTS changes AS SELECT * FROM read_parquet('changes.parquet');
COMMENT ON TABLE changes IS 'Manifestations added, updated, merged (old id into surviving id), split or deleted since the parent snapshot (manifest.json "parent").';

CREATE TABLE IF NOT EXISTS quarantine AS SELECT * EXCLUDE (raw) FROM read_parquet('quarantine.parquet/*.parquet');
COMMENT ON TABLE quarantine IS 'Source records that could not be read: library, file, position and reason.';

-- What each prediction's tensor was prepared from, so that a snapshot freezes the series and
-- its object references with the episodes (RecordPredictionRequest.series_content_sha256 and
-- .instance_sha256): the series content hash (preprocess' tensor cache key, SHA-256 over the
-- sorted instance digests) and the content addresses of the stored de-identified instances,
-- in the job's order.
--
-- Rows recorded before this migration, or by a worker that does not report them, keep both
-- empty: "not reported", never "no instances". The two are set together or not at all.
ALTER TABLE registry.predictions
    ADD COLUMN series_content_sha256 text NOT NULL DEFAULT ''
        CHECK (series_content_sha256 = '' OR series_content_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN instance_sha256 text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(instance_sha256) <= 4096),
    ADD CONSTRAINT predictions_series_refs_together
        CHECK ((series_content_sha256 = '') = (cardinality(instance_sha256) = 0));

-- Ingest, part 2: surrogate series ids (the id other services and apps use for a series)
-- and the processing status of each study's pipeline job, as the worker reports it through
-- Ingest.ReportJobStatus.

ALTER TABLE ingest.series
    ADD COLUMN series_id uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE ingest.series
    ADD CONSTRAINT series_series_id_key UNIQUE (series_id);

ALTER TABLE ingest.outbox
    ADD COLUMN state       text NOT NULL DEFAULT 'queued'
                           CHECK (state IN ('queued', 'in_progress', 'succeeded', 'dead_letter')),
    ADD COLUMN attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    ADD COLUMN last_error  text,
    ADD COLUMN state_at    timestamptz NOT NULL DEFAULT now();

-- How a study's instances arrived (grpc, dicom or both), for GetStudy.source.
ALTER TABLE ingest.studies
    ADD COLUMN received_via text[] NOT NULL DEFAULT '{}';

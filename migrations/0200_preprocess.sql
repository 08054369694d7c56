-- Preprocess: the pipeline worker's job ledger. Attempt counts, dead letters and the prediction
-- request of each job live here, so a Redis flush or a crashed worker loses nothing that decides
-- what happens next. Written only by tfesi-preprocess.

CREATE SCHEMA IF NOT EXISTS preprocess;

CREATE TABLE preprocess.jobs (
    job_id           uuid PRIMARY KEY,
    study_id         text NOT NULL,
    series_id        text NOT NULL DEFAULT '',
    -- The job as published (tfesi_platform::jobs::PipelineJob JSON): RetryDeadLetter re-adds it.
    payload          jsonb NOT NULL,
    state            text NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'in_progress', 'retrying', 'succeeded', 'dead_letter')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Pipeline stage of the last failure: prepare, predict, record.
    stage            text CHECK (stage IN ('prepare', 'predict', 'record')),
    last_error       text,
    reason_code      text,
    -- The RecordPrediction request (protobuf) once inference answered: a replay after a crash
    -- sends exactly these bytes again, so the registry sees the same content for the job id.
    prediction       bytea,
    first_failed_at  timestamptz,
    dead_lettered_at timestamptz,
    succeeded_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX jobs_dead_letters_idx ON preprocess.jobs (dead_lettered_at DESC, job_id DESC)
    WHERE state = 'dead_letter';
CREATE INDEX jobs_state_idx ON preprocess.jobs (state);

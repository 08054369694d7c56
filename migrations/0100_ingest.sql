-- Ingest service schema: PHI vault (originals only here), catalogue of de-identified instances,
-- selection decisions, quarantine, job outbox, and the append-only audit of identity lookups.
CREATE SCHEMA IF NOT EXISTS ingest;

-- Per-deployment HMAC key used to replace UIDs consistently (vault).
CREATE TABLE ingest.vault_secret (
    id          smallint PRIMARY KEY CHECK (id = 1),
    uid_key     bytea NOT NULL CHECK (length(uid_key) >= 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Identity -> random surrogate patient UUID and the patient's whole-day date shift (vault).
CREATE TABLE ingest.vault_patients (
    patient_uuid     uuid PRIMARY KEY,
    issuer           text NOT NULL DEFAULT '',
    mrn              text NOT NULL,
    patient_name     text,
    birth_date       text,
    date_shift_days  integer NOT NULL CHECK (date_shift_days <> 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (issuer, mrn)
);

-- De-identified studies (no PHI): the Study Instance UID here is the replaced one.
CREATE TABLE ingest.studies (
    study_id           uuid PRIMARY KEY,
    patient_uuid       uuid NOT NULL REFERENCES ingest.vault_patients (patient_uuid),
    study_uid          text NOT NULL UNIQUE,
    status             text NOT NULL DEFAULT 'receiving'
                       CHECK (status IN ('receiving', 'selected', 'no_eligible_series', 'processed')),
    selected_series    text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    last_instance_at   timestamptz NOT NULL DEFAULT now(),
    completed_at       timestamptz
);

-- Original study identifiers (vault).
CREATE TABLE ingest.vault_studies (
    study_id            uuid PRIMARY KEY REFERENCES ingest.studies (study_id),
    original_study_uid  text NOT NULL UNIQUE,
    accession_number    text
);
CREATE INDEX vault_studies_accession ON ingest.vault_studies (accession_number);

CREATE TABLE ingest.series (
    series_uid   text PRIMARY KEY,
    study_id     uuid NOT NULL REFERENCES ingest.studies (study_id),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX series_study ON ingest.series (study_id);

-- The replaced SOP Instance UID is a keyed hash of the original one, so uniqueness here is
-- uniqueness of the original instance without storing the original UID outside the vault.
CREATE TABLE ingest.instances (
    sop_instance_uid  text PRIMARY KEY,
    series_uid        text NOT NULL REFERENCES ingest.series (series_uid),
    study_id          uuid NOT NULL REFERENCES ingest.studies (study_id),
    object_sha256     text NOT NULL CHECK (object_sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes        bigint NOT NULL CHECK (size_bytes > 0),
    image             jsonb NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instances_series ON ingest.instances (series_uid);

CREATE TABLE ingest.quarantine (
    sop_instance_uid  text PRIMARY KEY,
    study_id          uuid NOT NULL REFERENCES ingest.studies (study_id),
    series_uid        text NOT NULL,
    reasons           text[] NOT NULL,
    sop_class_uid     text NOT NULL,
    modality          text,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quarantine_created ON ingest.quarantine (created_at);

CREATE TABLE ingest.selection_decisions (
    study_id    uuid NOT NULL REFERENCES ingest.studies (study_id),
    series_uid  text NOT NULL,
    eligible    boolean NOT NULL,
    selected    boolean NOT NULL,
    plane       text NOT NULL,
    weighting   text NOT NULL,
    slices      integer NOT NULL,
    score       double precision NOT NULL,
    reasons     jsonb NOT NULL,
    decided_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (study_id, series_uid)
);

-- Jobs for the pipeline, written in the same transaction as the study's completion.
-- The relay publishes rows with confirmed_at IS NULL whose last publication is older than the
-- re-publish timeout; the pipeline confirms a job by setting confirmed_at (ingest.confirm_job).
CREATE TABLE ingest.outbox (
    job_id          uuid PRIMARY KEY,
    study_id        uuid NOT NULL UNIQUE REFERENCES ingest.studies (study_id),
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz,
    publish_count   integer NOT NULL DEFAULT 0,
    confirmed_at    timestamptz
);
CREATE INDEX outbox_pending ON ingest.outbox (published_at) WHERE confirmed_at IS NULL;

-- Append-only audit of LookupIds / ResolvePatient (who, role, what, when, outcome).
CREATE TABLE ingest.audit (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    role       text NOT NULL,
    action     text NOT NULL,
    target     text NOT NULL,
    outcome    text NOT NULL
);

CREATE FUNCTION ingest.audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ingest.audit is append-only';
END;
$$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON ingest.audit
    FOR EACH ROW EXECUTE FUNCTION ingest.audit_is_append_only();

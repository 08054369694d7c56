-- Outcome registry (schema `registry`): patients by surrogate id, treatment episodes, injections,
-- predictions, versioned follow-ups, outcome status, label rules, immutable snapshots, events.
-- Clinical rules: /work/shared/CLINICAL.md. Enumerations are text with CHECK constraints so that
-- compile-checked queries need no custom type mappings.

CREATE SCHEMA IF NOT EXISTS registry;

-- Rows that must never change once written (snapshots, label rules, follow-up versions' scores).
CREATE FUNCTION registry.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'registry.%: rows are immutable (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

-- Surrogate ids only: the mapping to a real identity lives in ingest's vault, never here.
CREATE TABLE registry.patients (
    patient_id  uuid PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE registry.episodes (
    episode_id              uuid PRIMARY KEY,
    patient_id              uuid NOT NULL REFERENCES registry.patients (patient_id),
    -- Ingest's surrogate study id, once the MRI has arrived (LinkStudy); predictions attach by it.
    study_id                uuid,
    indication              text NOT NULL CHECK (indication IN ('herniated_disc', 'spinal_stenosis')),
    planned_levels          text[] NOT NULL CHECK (cardinality(planned_levels) BETWEEN 1 AND 7),
    planned_side            text NOT NULL CHECK (planned_side IN ('left', 'right', 'bilateral')),
    baseline_leg_nrs        smallint NOT NULL CHECK (baseline_leg_nrs BETWEEN 0 AND 10),
    baseline_back_nrs       smallint CHECK (baseline_back_nrs BETWEEN 0 AND 10),
    symptom_duration_days   integer NOT NULL CHECK (symptom_duration_days BETWEEN 0 AND 36500),
    baseline_date           date,
    age_years               smallint NOT NULL CHECK (age_years BETWEEN 0 AND 120),
    sex                     text NOT NULL CHECK (sex IN ('female', 'male', 'other', 'unknown')),
    -- Current outcome status; its history is registry.outcome_status_history.
    outcome_status          text NOT NULL DEFAULT 'pending' CHECK (outcome_status IN
                                ('pending', 'completed', 'lost_to_follow_up', 'withdrawn', 'excluded')),
    outcome_reason          text CHECK (outcome_reason IN
                                ('repeat_injection', 'surgery', 'baseline_too_low', 'out_of_window', 'deceased', 'other')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT excluded_has_reason CHECK ((outcome_status = 'excluded') = (outcome_reason IS NOT NULL))
);
CREATE INDEX episodes_patient_idx ON registry.episodes (patient_id);
CREATE INDEX episodes_study_idx ON registry.episodes (study_id);
CREATE INDEX episodes_created_idx ON registry.episodes (created_at DESC, episode_id DESC);

-- The index injection of an episode (one per episode; a repeat injection is a follow-up fact).
CREATE TABLE registry.injections (
    injection_id    uuid PRIMARY KEY,
    episode_id      uuid NOT NULL UNIQUE REFERENCES registry.episodes (episode_id),
    injection_date  date NOT NULL,
    levels          text[] NOT NULL CHECK (cardinality(levels) BETWEEN 1 AND 7),
    side            text NOT NULL CHECK (side IN ('left', 'right', 'bilateral')),
    approach        text NOT NULL CHECK (approach IN ('subpedicular', 'retrodiscal')),
    guidance        text NOT NULL CHECK (guidance IN ('fluoroscopy', 'ct')),
    contrast_used   boolean NOT NULL,
    drug_code       text NOT NULL CHECK (length(drug_code) BETWEEN 1 AND 64),
    drug_text       text NOT NULL DEFAULT '' CHECK (length(drug_text) <= 1000),
    dose_mg         double precision NOT NULL CHECK (dose_mg > 0 AND dose_mg <= 1000),
    local_anaesthetic text NOT NULL DEFAULT '' CHECK (length(local_anaesthetic) <= 500),
    recorded_by     text NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX injections_date_idx ON registry.injections (injection_date, episode_id);

-- Retried writes: the same key with the same request returns the stored response.
CREATE TABLE registry.idempotency_keys (
    -- Keys are scoped per RPC: the same key in two RPCs names two different writes.
    method          text NOT NULL,
    idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    -- sha256 of the method name and a canonical serialisation of the request.
    request_hash    bytea NOT NULL CHECK (length(request_hash) = 32),
    response        jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (method, idempotency_key)
);

-- Predictions are keyed by study: they belong to every episode linked to that study.
CREATE TABLE registry.predictions (
    prediction_id               uuid PRIMARY KEY,
    job_id                      text NOT NULL CHECK (length(job_id) BETWEEN 1 AND 200),
    model_role                  text NOT NULL CHECK (model_role IN ('champion', 'shadow', 'explicit')),
    study_id                    uuid NOT NULL,
    series_id                   uuid NOT NULL,
    tensor_sha256               text NOT NULL DEFAULT '',
    -- Clinical features the model was given (name -> value).
    clinical                    jsonb NOT NULL DEFAULT '{}',
    model_name                  text NOT NULL CHECK (length(model_name) BETWEEN 1 AND 200),
    model_version               text NOT NULL CHECK (length(model_version) BETWEEN 1 AND 200),
    preprocessing_spec_version  text NOT NULL,
    probability                 double precision NOT NULL CHECK (probability >= 0 AND probability <= 1),
    threshold                   double precision NOT NULL CHECK (threshold >= 0 AND threshold <= 1),
    execution_provider          text NOT NULL,
    -- When the model ran (caller's clock) and when the registry stored it (the registry's clock,
    -- which is what "prediction made before the follow-up was recorded" compares).
    predicted_at                timestamptz NOT NULL,
    recorded_at                 timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, model_role)
);
CREATE INDEX predictions_study_idx ON registry.predictions (study_id);
CREATE INDEX predictions_model_idx ON registry.predictions (model_name, model_version);

-- Follow-ups as versions: version 1 is the recording, later versions are amendments with a
-- reason. Exactly one version per episode is current; older versions are kept and readable.
CREATE TABLE registry.follow_ups (
    follow_up_id            uuid PRIMARY KEY,
    episode_id              uuid NOT NULL REFERENCES registry.episodes (episode_id),
    version                 integer NOT NULL CHECK (version >= 1),
    is_current              boolean NOT NULL,
    amendment_reason        text CHECK (length(amendment_reason) BETWEEN 1 AND 2000),
    follow_up_date          date NOT NULL,
    days_since_injection    integer NOT NULL CHECK (days_since_injection >= 0),
    -- Whether the day count lay inside the window configured when it was recorded, and whether
    -- the person entering it explicitly accepted a score outside that window.
    in_window               boolean NOT NULL,
    out_of_window_accepted  boolean NOT NULL,
    leg_nrs                 smallint NOT NULL CHECK (leg_nrs BETWEEN 0 AND 10),
    back_nrs                smallint CHECK (back_nrs BETWEEN 0 AND 10),
    pgic                    smallint CHECK (pgic BETWEEN 1 AND 7),
    analgesic_change        text CHECK (analgesic_change IN ('none', 'decreased', 'unchanged', 'increased', 'stopped')),
    -- NULL: not asked. Only a recorded `true` excludes an episode from labels.
    repeat_injection        boolean,
    surgery                 boolean,
    adverse_events          text[] NOT NULL DEFAULT '{}',
    adverse_event_note      text NOT NULL DEFAULT '' CHECK (length(adverse_event_note) <= 2000),
    method                  text NOT NULL CHECK (method IN ('clinic', 'phone', 'message')),
    entered_by              text NOT NULL CHECK (length(entered_by) BETWEEN 1 AND 200),
    recorded_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (episode_id, version),
    CONSTRAINT amendment_has_reason CHECK ((version = 1) = (amendment_reason IS NULL)),
    CONSTRAINT out_of_window_needs_flag CHECK (in_window OR out_of_window_accepted)
);
CREATE UNIQUE INDEX follow_ups_one_current_idx ON registry.follow_ups (episode_id) WHERE is_current;

-- Only the is_current flag of a follow-up version may change (when it is superseded).
CREATE FUNCTION registry.follow_up_only_current_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'registry.follow_ups: versions are never deleted'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF (to_jsonb(NEW) - 'is_current') IS DISTINCT FROM (to_jsonb(OLD) - 'is_current')
       OR (OLD.is_current = false AND NEW.is_current = true) THEN
        RAISE EXCEPTION 'registry.follow_ups: a version is immutable; amend instead'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER follow_ups_immutable BEFORE UPDATE OR DELETE ON registry.follow_ups
    FOR EACH ROW EXECUTE FUNCTION registry.follow_up_only_current_changes();

-- Every status an episode has had, so that a snapshot can be rebuilt as of a past time.
CREATE TABLE registry.outcome_status_history (
    change_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    episode_id      uuid NOT NULL REFERENCES registry.episodes (episode_id),
    outcome_status  text NOT NULL CHECK (outcome_status IN
                        ('pending', 'completed', 'lost_to_follow_up', 'withdrawn', 'excluded')),
    outcome_reason  text CHECK (outcome_reason IN
                        ('repeat_injection', 'surgery', 'baseline_too_low', 'out_of_window', 'deceased', 'other')),
    note            text NOT NULL DEFAULT '' CHECK (length(note) <= 2000),
    changed_by      text NOT NULL,
    changed_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT excluded_has_reason CHECK ((outcome_status = 'excluded') = (outcome_reason IS NOT NULL))
);
CREATE INDEX outcome_status_history_episode_idx ON registry.outcome_status_history (episode_id, change_id);
CREATE TRIGGER outcome_status_history_immutable BEFORE UPDATE OR DELETE ON registry.outcome_status_history
    FOR EACH ROW EXECUTE FUNCTION registry.refuse_change();

-- Responder rules, versioned and immutable: a new rule is a new version, raw scores stay as they are.
CREATE TABLE registry.label_rules (
    rule_version                text PRIMARY KEY CHECK (rule_version ~ '^[a-z0-9][a-z0-9.-]{0,63}$'),
    description                 text NOT NULL,
    -- Which score the label uses: leg pain (the trials' primary score) or back pain.
    score_site                  text NOT NULL CHECK (score_site IN ('leg', 'back')),
    min_baseline_nrs            smallint NOT NULL CHECK (min_baseline_nrs BETWEEN 1 AND 10),
    -- Responder when (baseline - follow-up) / baseline >= min_reduction_pct / 100, compared in
    -- integers: 100 * (baseline - follow-up) >= min_reduction_pct * baseline.
    min_reduction_pct           smallint NOT NULL CHECK (min_reduction_pct BETWEEN 1 AND 100),
    window_start_day            integer NOT NULL CHECK (window_start_day >= 0),
    due_day                     integer NOT NULL,
    window_end_day              integer NOT NULL,
    include_out_of_window       boolean NOT NULL,
    exclude_repeat_injection    boolean NOT NULL,
    exclude_surgery             boolean NOT NULL,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT window_ordered CHECK (window_start_day <= due_day AND due_day <= window_end_day)
);
CREATE TRIGGER label_rules_immutable BEFORE UPDATE OR DELETE ON registry.label_rules
    FOR EACH ROW EXECUTE FUNCTION registry.refuse_change();

INSERT INTO registry.label_rules (rule_version, description, score_site, min_baseline_nrs, min_reduction_pct,
        window_start_day, due_day, window_end_day, include_out_of_window, exclude_repeat_injection, exclude_surgery)
VALUES ('nrs50-v1',
        'Kim et al. 2022: leg NRS reduced by at least 50% at 2 months (day 46 to 74); baseline >= 4 (IMMPACT); repeat injection or surgery excludes',
        'leg', 4, 50, 46, 60, 74, false, true, true);

-- Frozen training snapshots: the manifest is immutable and its sha256 is its identity.
CREATE TABLE registry.snapshots (
    snapshot_id     text PRIMARY KEY CHECK (snapshot_id ~ '^[0-9a-f]{64}$'),
    rule_version    text NOT NULL REFERENCES registry.label_rules (rule_version),
    as_of           timestamptz NOT NULL,
    split_seed      bigint NOT NULL,
    description     text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    entry_count     integer NOT NULL CHECK (entry_count >= 0),
    manifest        jsonb NOT NULL,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER snapshots_immutable BEFORE UPDATE OR DELETE ON registry.snapshots
    FOR EACH ROW EXECUTE FUNCTION registry.refuse_change();

-- Append-only event log; each insert is announced on channel `registry_events` at commit.
CREATE TABLE registry.events (
    event_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    episode_id  uuid NOT NULL REFERENCES registry.episodes (episode_id),
    kind        text NOT NULL CHECK (kind IN
                    ('episode_created', 'study_linked', 'injection_recorded', 'prediction_recorded',
                     'follow_up_recorded', 'follow_up_amended', 'status_changed')),
    -- The row the event is about (injection, prediction or follow-up id; status change id).
    subject     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_episode_idx ON registry.events (episode_id, event_id);

CREATE FUNCTION registry.announce_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('registry_events',
        json_build_object('event_id', NEW.event_id, 'episode_id', NEW.episode_id, 'kind', NEW.kind)::text);
    RETURN NEW;
END;
$$;
CREATE TRIGGER events_announce AFTER INSERT ON registry.events
    FOR EACH ROW EXECUTE FUNCTION registry.announce_event();
CREATE TRIGGER events_immutable BEFORE UPDATE OR DELETE ON registry.events
    FOR EACH ROW EXECUTE FUNCTION registry.refuse_change();

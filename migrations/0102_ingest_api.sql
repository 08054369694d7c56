-- Ingest, part 3: what the gRPC API needs beyond parts 1 and 2.
--
-- * A reopened study that is completed again may select different content and write a new
--   pipeline job, so a study may have several jobs over time; its current one is the newest.
-- * LookupIds may create a patient before images arrive, with the identity the app knows
--   (sex and phone are PHI and stay in the vault).
-- * ListStudies and ListQuarantine page newest first with keyset tokens.
-- * ResolvePatient records its purpose in the audit.

ALTER TABLE ingest.outbox DROP CONSTRAINT outbox_study_id_key;
CREATE INDEX outbox_study_created ON ingest.outbox (study_id, created_at DESC);

ALTER TABLE ingest.vault_patients
    ADD COLUMN sex    text CHECK (sex IN ('F', 'M', 'O')),
    ADD COLUMN phone  text;

CREATE INDEX studies_created ON ingest.studies (created_at DESC, study_id DESC);
CREATE INDEX studies_patient ON ingest.studies (patient_uuid);
CREATE INDEX quarantine_created_uid ON ingest.quarantine (created_at DESC, sop_instance_uid DESC);
CREATE INDEX audit_at ON ingest.audit (at);

-- ResolvePatient is audited with its purpose.
ALTER TABLE ingest.audit ADD COLUMN purpose text;

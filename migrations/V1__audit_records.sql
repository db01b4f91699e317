-- Every decision Sluice makes, one row each, in the order recorded (seq).
CREATE TABLE sluice_audit_records (
    seq          BIGSERIAL PRIMARY KEY,
    -- Unique per record: a batch retried after a lost commit inserts nothing twice.
    id           TEXT NOT NULL UNIQUE,
    recorded_at  TIMESTAMPTZ NOT NULL,
    -- Event, Evaluation or Deployment.
    kind         TEXT NOT NULL,
    namespace    TEXT NOT NULL,
    object_kind  TEXT NOT NULL,
    object_name  TEXT NOT NULL,
    environment  TEXT NOT NULL,
    revision     TEXT,
    reason       TEXT NOT NULL,
    warning      BOOLEAN NOT NULL,
    -- Who asked, for manual requests.
    actor        TEXT,
    message      TEXT NOT NULL,
    data         JSONB NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX sluice_audit_records_object ON sluice_audit_records (namespace, object_kind, object_name, recorded_at);
CREATE INDEX sluice_audit_records_kind ON sluice_audit_records (kind, recorded_at);
CREATE INDEX sluice_audit_records_recorded_at ON sluice_audit_records (recorded_at);

-- One row per rollout that ended: promoted or rolled back.
CREATE VIEW sluice_deployments AS
SELECT seq,
       namespace,
       object_name AS service,
       environment,
       revision,
       (data ->> 'startedAt')::timestamptz AS started_at,
       (data ->> 'finishedAt')::timestamptz AS finished_at,
       data ->> 'result' AS result,
       data ->> 'cause' AS cause,
       message AS reason
FROM sluice_audit_records
WHERE kind = 'Deployment';

-- Each rollback, and the first promotion of the same service and environment after it.
CREATE VIEW sluice_restorations AS
SELECT failed.namespace,
       failed.service,
       failed.environment,
       failed.finished_at AS failed_at,
       failed.cause,
       (SELECT min(next.finished_at)
          FROM sluice_deployments next
         WHERE next.namespace = failed.namespace
           AND next.service = failed.service
           AND next.environment = failed.environment
           AND next.result = 'Promoted'
           AND next.finished_at > failed.finished_at) AS restored_at
FROM sluice_deployments failed
WHERE failed.result = 'RolledBack';

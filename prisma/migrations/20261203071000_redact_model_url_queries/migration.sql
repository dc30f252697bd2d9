-- Model source URLs recorded before their query was kept sealed: a signed URL carries its
-- signature and credentials in the query, which viewers and the audit log must not see. The
-- audit log keeps the address without its query; a version keeps it too once its file has
-- arrived (a version still fetching, or that may be fetched again, keeps what it needs).
UPDATE "AuditEvent"
SET "data" = jsonb_set("data", '{source,url}', to_jsonb(regexp_replace("data" #>> '{source,url}', '[?#].*$', '')))
WHERE "action" = 'model.version_add' AND "data" #>> '{source,kind}' = 'url' AND "data" #>> '{source,url}' ~ '[?#]';

UPDATE "ModelVersion"
SET "source" = jsonb_set("source", '{url}', to_jsonb(regexp_replace("source" ->> 'url', '[?#].*$', '')))
WHERE "source" ->> 'kind' = 'url' AND "source" ->> 'url' ~ '[?#]' AND "source" ->> 'sealedUrl' IS NULL AND "sha256" IS NOT NULL;

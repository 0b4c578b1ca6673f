-- Custom SQL (drizzle-kit generate --custom): lock_audit is append-only. UPDATE, DELETE and
-- TRUNCATE are refused for every role, so history can only be rewritten by disabling the triggers,
-- which the chain verifier then detects.
CREATE FUNCTION lock_audit_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'lock_audit is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
--> statement-breakpoint
CREATE TRIGGER lock_audit_no_update_delete BEFORE UPDATE OR DELETE ON lock_audit
  FOR EACH ROW EXECUTE FUNCTION lock_audit_reject_change();
--> statement-breakpoint
CREATE TRIGGER lock_audit_no_truncate BEFORE TRUNCATE ON lock_audit
  FOR EACH STATEMENT EXECUTE FUNCTION lock_audit_reject_change();

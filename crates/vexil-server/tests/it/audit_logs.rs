//! Tests of audit_logs (filled in this session).

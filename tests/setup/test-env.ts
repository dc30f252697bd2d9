import os from "node:os";
import path from "node:path";
import { inject } from "vitest";

process.env.DATABASE_URL = inject("databaseUrl");
process.env.GANTRY_TEST_SWIFT_HOME = inject("swiftHome");
process.env.GANTRY_HOME ??= path.join(os.tmpdir(), `gantry-test-${process.pid}`);
process.env.AUTH_SECRET ??= "test-secret-test-secret-test-secret-0123456789";
process.env.ENCRYPTION_KEY ??= "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
process.env.WORKER_HEARTBEAT_MS ??= "500";
process.env.SSE_HEARTBEAT_MS ??= "500";
// The test rigs (sshd, hub stand-in, webhook receivers) listen on loopback; the outbound
// policy's own tests turn this off for themselves.
process.env.OUTBOUND_ALLOW_LOOPBACK ??= "true";
// Training runs are followed closely and cancelled quickly in tests.
process.env.TRAINING_POLL_MS ??= "250";
process.env.TRAINING_CANCEL_GRACE_S ??= "3";
process.env.TRAINING_LOST_AFTER_MS ??= "30000";
process.env.TRAINING_LOG_MAX_BYTES ??= "1048576";

-- The Kubernetes executor (whittle.executor=kubernetes): one batch/v1 Job per compression job.
-- Portable SQL: the same migration runs on H2 (embedded default) and PostgreSQL (cluster).

-- Which executor runs (or ran) the job: 'local' (worker slots of a service process) or 'kubernetes'.
ALTER TABLE compression_job ADD COLUMN executor VARCHAR(16) DEFAULT 'local' NOT NULL;
-- Optional placement request {"gpus": n, "gpuResource": "..."} (Kubernetes executor only), as JSON.
ALTER TABLE compression_job ADD COLUMN resources VARCHAR(1000);
-- The Kubernetes Job created for the job (set once it exists; the dispatcher's idempotency marker).
ALTER TABLE compression_job ADD COLUMN kubernetes_job VARCHAR(63);
-- What the reconciler last saw of the Job's newest pod.
ALTER TABLE compression_job ADD COLUMN kubernetes_pod VARCHAR(253);
ALTER TABLE compression_job ADD COLUMN kubernetes_pod_phase VARCHAR(32);
ALTER TABLE compression_job ADD COLUMN kubernetes_detail VARCHAR(1000);

-- The dispatcher looks for queued jobs without a Kubernetes Job; the reconciler for unfinished ones with one.
CREATE INDEX compression_job_dispatch_ix ON compression_job (state, kubernetes_job);

-- Named leader leases: one API replica at a time dispatches and reconciles (renewed while it lives).
CREATE TABLE service_leader (
    name        VARCHAR(100) NOT NULL PRIMARY KEY,
    owner       VARCHAR(200),
    lease_until TIMESTAMP WITH TIME ZONE
);
INSERT INTO service_leader (name, owner, lease_until) VALUES ('kubernetes-executor', NULL, NULL);

package io.whittle.jobs;

import io.whittle.jobs.Job.JobError;
import io.whittle.jobs.Job.JobOutput;
import io.whittle.jobs.Job.Progress;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Collection;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;
import javax.sql.DataSource;
import org.springframework.dao.DuplicateKeyException;
import org.springframework.jdbc.core.JdbcTemplate;
import org.springframework.jdbc.datasource.DataSourceTransactionManager;
import org.springframework.transaction.support.TransactionTemplate;

/**
 * The job table: both the queue the workers claim from and the resource the REST API shows. Claims use
 * {@code SELECT ... FOR UPDATE SKIP LOCKED} and a lease renewed by heartbeats; every write a worker makes while it
 * runs a job is fenced by {@code lease_owner}, so a worker that lost its lease (and whose job another worker took)
 * changes nothing. The SQL is portable: the same statements run on H2 and PostgreSQL. Times come from one clock,
 * the workers' (keep nodes NTP-synchronised; the lease is long against any skew).
 */
public final class JobStore {

    private static final String COLUMNS = "id, seq, method, state, priority, model, calibration, eval_data, output, params, "
            + "sampling, backend, device, idempotency_key, request_hash, created_at, started_at, finished_at, attempt, "
            + "max_attempts, lease_owner, lease_until, cancel_requested, progress_stage, progress_layer, progress_layers, "
            + "progress_fraction, error_code, error_message, result_output, result_report, executor, resources, kubernetes_job, "
            + "kubernetes_pod, kubernetes_pod_phase, kubernetes_detail";

    /** How many final-state transitions one claim may make (expired, used-up or cancelled jobs) before giving up. */
    private static final int MAX_CLOSED_PER_CLAIM = 16;

    private final JdbcTemplate jdbc;
    private final TransactionTemplate tx;
    private final Clock clock;

    public JobStore(DataSource dataSource, Clock clock) {
        this.jdbc = new JdbcTemplate(dataSource);
        this.tx = new TransactionTemplate(new DataSourceTransactionManager(dataSource));
        this.clock = clock;
    }

    /** Outcome of a cancellation request. */
    public enum CancelOutcome {
        /** The job was queued and is now cancelled. */
        CANCELLED,
        /** The job is running; its worker stops at the next layer boundary. */
        REQUESTED,
        /** The job had already ended; nothing changed. */
        ALREADY_FINAL,
        NOT_FOUND
    }

    /** What the lease holder learns from a heartbeat. */
    public record LeaseStatus(boolean held, boolean cancelRequested) {
    }

    private OffsetDateTime now() {
        return OffsetDateTime.ofInstant(clock.instant(), ZoneOffset.UTC);
    }

    /**
     * Inserts a new queued job. When another job already holds the same idempotency key, nothing is inserted and
     * that job is returned instead (the caller compares {@link Job#requestHash()}).
     */
    public Job insert(NewJob j) {
        OffsetDateTime now = now();
        try {
            jdbc.update("INSERT INTO compression_job (id, method, state, priority, model, calibration, eval_data, output, params, "
                            + "sampling, backend, idempotency_key, request_hash, created_at, attempt, max_attempts, updated_at, "
                            + "executor, resources) VALUES (?, ?, 'QUEUED', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
                    j.id(), j.method(), j.priority(), j.model(), j.calibration(), j.eval(), j.output(), j.paramsJson(),
                    j.samplingJson(), j.backend(), j.idempotencyKey(), j.requestHash(), now, j.maxAttempts(), now,
                    j.executor(), j.resources() == null || j.resources().isEmpty() ? null : j.resources().toJson());
        } catch (DuplicateKeyException e) {
            if (j.idempotencyKey() != null) {
                Optional<Job> existing = findByIdempotencyKey(j.idempotencyKey());
                if (existing.isPresent()) {
                    return existing.get();
                }
            }
            throw e;
        }
        return find(j.id()).orElseThrow();
    }

    public Optional<Job> find(String id) {
        return jdbc.query("SELECT " + COLUMNS + " FROM compression_job WHERE id = ?", JobStore::row, id).stream().findFirst();
    }

    public Optional<Job> findByIdempotencyKey(String key) {
        return jdbc.query("SELECT " + COLUMNS + " FROM compression_job WHERE idempotency_key = ?", JobStore::row, key)
                .stream().findFirst();
    }

    /**
     * Jobs newest first, optionally of one state and/or method, starting after the job with sequence number
     * {@code beforeSeq} (exclusive; null for the newest).
     */
    public List<Job> list(JobState state, String method, Long beforeSeq, int limit) {
        StringBuilder sql = new StringBuilder("SELECT " + COLUMNS + " FROM compression_job WHERE 1 = 1");
        List<Object> args = new ArrayList<>();
        if (state != null) {
            sql.append(" AND state = ?");
            args.add(state.name());
        }
        if (method != null) {
            sql.append(" AND method = ?");
            args.add(method);
        }
        if (beforeSeq != null) {
            sql.append(" AND seq < ?");
            args.add(beforeSeq);
        }
        sql.append(" ORDER BY seq DESC FETCH FIRST ").append(limit).append(" ROWS ONLY");
        return jdbc.query(sql.toString(), JobStore::row, args.toArray());
    }

    /** Number of jobs in each state (every state present, zero when none). */
    public Map<JobState, Long> countByState() {
        Map<JobState, Long> out = new EnumMap<>(JobState.class);
        for (JobState s : JobState.values()) {
            out.put(s, 0L);
        }
        jdbc.query("SELECT state, COUNT(*) FROM compression_job GROUP BY state",
                (ResultSet rs) -> {
                    out.put(JobState.valueOf(rs.getString(1)), rs.getLong(2));
                });
        return out;
    }

    /**
     * Claims the next job for {@code owner}: the queued job (or the running job whose lease has expired, i.e. whose
     * worker died) of highest priority, oldest first, among those asking for one of {@code backends} and not handed to
     * a Kubernetes Job. Takes a lease of {@code lease} and counts an attempt. An expired job whose attempts are used up
     * is failed ({@link JobErrorCodes#LEASE_EXPIRED}), and an expired job with a cancel request is cancelled, instead
     * of being handed out; {@code closed} hears of each.
     */
    public Optional<Job> claim(String owner, Duration lease, Collection<String> backends, String device,
                               Consumer<Job> closed) {
        if (backends.isEmpty()) {
            throw new IllegalArgumentException("a worker must accept at least one backend");
        }
        String in = String.join(", ", java.util.Collections.nCopies(backends.size(), "?"));
        String select = "SELECT " + CANDIDATE_COLUMNS + " FROM compression_job"
                + " WHERE (state = 'QUEUED' OR (state = 'RUNNING' AND lease_until < ?)) AND backend IN (" + in + ")"
                + " AND kubernetes_job IS NULL ORDER BY priority DESC, seq FETCH FIRST 1 ROWS ONLY FOR UPDATE SKIP LOCKED";
        List<Job> closedJobs = new ArrayList<>();
        Optional<Job> claimed = tx.execute(status -> {
            for (int i = 0; i < MAX_CLOSED_PER_CLAIM; i++) {
                OffsetDateTime now = now();
                List<Object> args = new ArrayList<>();
                args.add(now);
                args.addAll(backends);
                List<Candidate> found = jdbc.query(select, JobStore::candidate, args.toArray());
                if (found.isEmpty()) {
                    return Optional.<Job>empty();
                }
                Job taken = takeOrClose(found.get(0), owner, lease, device, ExecutorNames.LOCAL, now, closedJobs);
                if (taken != null) {
                    return Optional.of(taken);
                }
            }
            return Optional.<Job>empty();
        });
        closedJobs.forEach(closed);
        return claimed;
    }

    /**
     * Claims the job {@code id} and no other (a Kubernetes Job's pod, {@code whittle worker --job}): queued, or
     * running under a lease that has expired (the pod before this one died). The same lease, attempt counting and
     * closing rules as {@link #claim}; a job another worker holds under a live lease is not taken.
     */
    public JobClaim claimJob(String id, String owner, Duration lease, String device, Consumer<Job> closed) {
        List<Job> closedJobs = new ArrayList<>();
        JobClaim result = tx.execute(status -> {
            OffsetDateTime now = now();
            List<Candidate> found = jdbc.query("SELECT " + CANDIDATE_COLUMNS + " FROM compression_job WHERE id = ? FOR UPDATE",
                    JobStore::candidate, id);
            if (found.isEmpty()) {
                return new JobClaim.Refused(JobClaim.Reason.NOT_FOUND, null, "job " + id + " does not exist");
            }
            Candidate c = found.get(0);
            if (c.state().isFinal()) {
                return new JobClaim.Refused(JobClaim.Reason.FINISHED, c.state(), "job " + id + " has already finished ("
                        + c.state() + ")");
            }
            if (c.state() == JobState.RUNNING && c.leaseUntil() != null && !c.leaseUntil().isBefore(now)) {
                return new JobClaim.Refused(JobClaim.Reason.HELD, c.state(), "job " + id + " is held by " + c.leaseOwner()
                        + " until " + c.leaseUntil().toInstant() + " (attempt " + c.attempt() + " of " + c.maxAttempts() + ")");
            }
            Job taken = takeOrClose(c, owner, lease, device, null, now, closedJobs);
            if (taken != null) {
                return new JobClaim.Claimed(taken);
            }
            Job ended = closedJobs.get(closedJobs.size() - 1);
            return new JobClaim.Refused(JobClaim.Reason.FINISHED, ended.state(), "job " + id + " has already finished ("
                    + ended.state() + ": " + ended.error().message() + ")");
        });
        closedJobs.forEach(closed);
        return result;
    }

    private static final String CANDIDATE_COLUMNS = "id, state, attempt, max_attempts, cancel_requested, lease_owner, lease_until";

    private record Candidate(String id, JobState state, int attempt, int maxAttempts, boolean cancelRequested,
                             String leaseOwner, OffsetDateTime leaseUntil) {
    }

    private static Candidate candidate(ResultSet rs, int n) throws SQLException {
        return new Candidate(rs.getString(1), JobState.valueOf(rs.getString(2)), rs.getInt(3), rs.getInt(4), rs.getBoolean(5),
                rs.getString(6), rs.getObject(7, OffsetDateTime.class));
    }

    /**
     * Inside a claim's transaction, with the row locked: takes a claimable job (lease, attempt, {@code executor} when
     * not null) and returns it, or closes an expired one that must not run again (cancel requested: CANCELLED;
     * attempts used up: FAILED with {@link JobErrorCodes#LEASE_EXPIRED}), adds it to {@code closedJobs} and returns
     * null.
     */
    private Job takeOrClose(Candidate c, String owner, Duration lease, String device, String executor, OffsetDateTime now,
                            List<Job> closedJobs) {
        if (c.state() == JobState.RUNNING && c.cancelRequested()) {
            close(c.id(), JobState.CANCELLED, new JobError(JobErrorCodes.CANCELLED,
                    "cancelled by request; its worker (" + c.leaseOwner() + ") stopped before finishing"), now);
            closedJobs.add(find(c.id()).orElseThrow());
            return null;
        }
        if (c.state() == JobState.RUNNING && c.attempt() >= c.maxAttempts()) {
            close(c.id(), JobState.FAILED, new JobError(JobErrorCodes.LEASE_EXPIRED, "the worker of attempt "
                    + c.attempt() + " (" + c.leaseOwner() + ") stopped heartbeating, and all " + c.maxAttempts()
                    + " attempts are used up"), now);
            closedJobs.add(find(c.id()).orElseThrow());
            return null;
        }
        jdbc.update("UPDATE compression_job SET state = 'RUNNING', lease_owner = ?, lease_until = ?, attempt = attempt + 1,"
                        + " started_at = ?, device = ?, progress_stage = NULL, progress_layer = NULL, progress_layers = NULL,"
                        + " progress_fraction = 0, executor = COALESCE(?, executor), updated_at = ? WHERE id = ?",
                owner, now.plus(lease), now, device, executor, now, c.id());
        return find(c.id()).orElseThrow();
    }

    private void close(String id, JobState state, JobError error, OffsetDateTime now) {
        jdbc.update("UPDATE compression_job SET state = ?, lease_owner = NULL, lease_until = NULL, finished_at = ?,"
                + " error_code = ?, error_message = ?, updated_at = ? WHERE id = ?", state.name(), now, error.code(),
                error.message(), now, id);
    }

    /**
     * Renews the lease of a running job and reports whether a cancel was requested. {@code held=false} means the
     * lease is lost (expired and taken by another worker, or the job ended): the caller must stop and discard.
     */
    public LeaseStatus heartbeat(String id, String owner, Duration lease) {
        OffsetDateTime now = now();
        int n = jdbc.update("UPDATE compression_job SET lease_until = ?, updated_at = ? WHERE id = ? AND lease_owner = ?"
                + " AND state = 'RUNNING'", now.plus(lease), now, id, owner);
        if (n == 0) {
            return new LeaseStatus(false, false);
        }
        Boolean cancel = jdbc.queryForObject("SELECT cancel_requested FROM compression_job WHERE id = ?", Boolean.class, id);
        return new LeaseStatus(true, Boolean.TRUE.equals(cancel));
    }

    /** Records progress of a running job; false when the lease is lost. */
    public boolean updateProgress(String id, String owner, Progress p) {
        return jdbc.update("UPDATE compression_job SET progress_stage = ?, progress_layer = ?, progress_layers = ?,"
                        + " progress_fraction = ?, updated_at = ? WHERE id = ? AND lease_owner = ? AND state = 'RUNNING'",
                p.stage(), p.layer(), p.layers(), p.fraction(), now(), id, owner) == 1;
    }

    /** Records the device a running attempt uses; false when the lease is lost. */
    public boolean updateDevice(String id, String owner, String device) {
        return jdbc.update("UPDATE compression_job SET device = ?, updated_at = ? WHERE id = ? AND lease_owner = ?"
                + " AND state = 'RUNNING'", device, now(), id, owner) == 1;
    }

    /**
     * Ends a running job held by {@code owner}: SUCCEEDED with its output, or FAILED/CANCELLED with the error. False
     * (and nothing written) when the lease is lost.
     */
    public boolean finish(String id, String owner, JobState state, JobError error, JobOutput result, String device,
                          Progress finalProgress) {
        if (!state.isFinal()) {
            throw new IllegalArgumentException("finish needs a final state, got " + state);
        }
        OffsetDateTime now = now();
        Progress p = finalProgress == null ? Progress.NONE : finalProgress;
        return jdbc.update("UPDATE compression_job SET state = ?, lease_owner = NULL, lease_until = NULL, finished_at = ?,"
                        + " error_code = ?, error_message = ?, result_output = ?, result_report = ?,"
                        + " device = COALESCE(?, device), progress_stage = ?, progress_layer = ?, progress_layers = ?,"
                        + " progress_fraction = ?, updated_at = ? WHERE id = ? AND lease_owner = ? AND state = 'RUNNING'",
                state.name(), now, error == null ? null : error.code(), error == null ? null : truncate(error.message()),
                result == null ? null : result.output(), result == null ? null : result.report(), device, p.stage(),
                p.layer(), p.layers(), p.fraction(), now, id, owner) == 1;
    }

    /**
     * Gives a running job back to the queue (a worker shutting down): QUEUED again without counting the attempt, or
     * CANCELLED when a cancel was requested meanwhile. False when the lease was already lost.
     */
    public boolean release(String id, String owner) {
        OffsetDateTime now = now();
        int n = jdbc.update("UPDATE compression_job SET state = 'CANCELLED', lease_owner = NULL, lease_until = NULL,"
                        + " finished_at = ?, error_code = ?, error_message = ?, updated_at = ?"
                        + " WHERE id = ? AND lease_owner = ? AND state = 'RUNNING' AND cancel_requested = TRUE",
                now, JobErrorCodes.CANCELLED, "cancelled by request", now, id, owner);
        if (n == 1) {
            return true;
        }
        return jdbc.update("UPDATE compression_job SET state = 'QUEUED', lease_owner = NULL, lease_until = NULL,"
                        + " attempt = attempt - 1, started_at = NULL, progress_stage = NULL, progress_layer = NULL,"
                        + " progress_layers = NULL, progress_fraction = 0, updated_at = ?"
                        + " WHERE id = ? AND lease_owner = ? AND state = 'RUNNING'", now, id, owner) == 1;
    }

    /**
     * Cancels a job: a queued one at once, a running one by setting its cancel flag (its worker sees it at the next
     * heartbeat and stops at the next layer boundary). Retries when the job moves between the two checks (claimed,
     * or released by a stopping worker).
     */
    public CancelOutcome requestCancel(String id) {
        for (int i = 0; i < 5; i++) {
            OffsetDateTime now = now();
            if (jdbc.update("UPDATE compression_job SET state = 'CANCELLED', cancel_requested = TRUE, finished_at = ?,"
                            + " error_code = ?, error_message = ?, updated_at = ? WHERE id = ? AND state = 'QUEUED'",
                    now, JobErrorCodes.CANCELLED, "cancelled by request before it started", now, id) == 1) {
                return CancelOutcome.CANCELLED;
            }
            if (jdbc.update("UPDATE compression_job SET cancel_requested = TRUE, updated_at = ? WHERE id = ? AND state = 'RUNNING'",
                    now, id) == 1) {
                return CancelOutcome.REQUESTED;
            }
            Optional<Job> job = find(id);
            if (job.isEmpty()) {
                return CancelOutcome.NOT_FOUND;
            }
            if (job.get().state().isFinal()) {
                return CancelOutcome.ALREADY_FINAL;
            }
        }
        throw new IllegalStateException("job " + id + " kept changing state while being cancelled");
    }

    // ---- Kubernetes executor: dispatch and reconciliation --------------------------------------------------------

    /** Queued jobs without a Kubernetes Job yet (and no cancel request), highest priority first, then oldest. */
    public List<Job> awaitingDispatch(int limit) {
        return jdbc.query("SELECT " + COLUMNS + " FROM compression_job WHERE state = 'QUEUED' AND kubernetes_job IS NULL"
                + " AND cancel_requested = FALSE ORDER BY priority DESC, seq FETCH FIRST " + limit + " ROWS ONLY", JobStore::row);
    }

    /**
     * Records that the Kubernetes Job {@code kubernetesJob} was created for job {@code id} (executor
     * {@code kubernetes}). False, with nothing written, when the job already has one or has ended meanwhile.
     */
    public boolean markDispatched(String id, String kubernetesJob) {
        return jdbc.update("UPDATE compression_job SET kubernetes_job = ?, executor = ?, updated_at = ? WHERE id = ?"
                        + " AND kubernetes_job IS NULL AND state IN ('QUEUED', 'RUNNING')",
                kubernetesJob, ExecutorNames.KUBERNETES, now(), id) == 1;
    }

    /** Jobs with a Kubernetes Job that have not ended, or ended at or after {@code endedSince}. */
    public List<Job> dispatched(Instant endedSince) {
        return jdbc.query("SELECT " + COLUMNS + " FROM compression_job WHERE kubernetes_job IS NOT NULL"
                        + " AND (state IN ('QUEUED', 'RUNNING') OR finished_at >= ?) ORDER BY seq",
                JobStore::row, OffsetDateTime.ofInstant(endedSince, ZoneOffset.UTC));
    }

    /** Records what was seen of a job's pod (informational: any state, no lease needed). */
    public void updateKubernetesStatus(String id, String pod, String podPhase, String detail) {
        jdbc.update("UPDATE compression_job SET kubernetes_pod = ?, kubernetes_pod_phase = ?, kubernetes_detail = ?,"
                + " updated_at = ? WHERE id = ?", pod, podPhase, truncate(detail, 1000), now(), id);
    }

    /**
     * Fails a job that has not ended, whoever holds it: the executor's verdict when Kubernetes has given up on the
     * job's pods (a worker that is somehow still alive can then record nothing: its writes need the RUNNING state).
     * False when the job had already ended.
     */
    public boolean failUnfinished(String id, JobError error) {
        OffsetDateTime now = now();
        return jdbc.update("UPDATE compression_job SET state = 'FAILED', lease_owner = NULL, lease_until = NULL, finished_at = ?,"
                        + " error_code = ?, error_message = ?, updated_at = ? WHERE id = ? AND state IN ('QUEUED', 'RUNNING')",
                now, error.code(), truncate(error.message()), now, id) == 1;
    }

    /**
     * Ends a job whose worker is gone for good (its Kubernetes Job no longer exists) unless a live lease says a
     * worker still holds it: CANCELLED when a cancel was requested, else FAILED with {@code failure}. Returns the
     * state written, empty when nothing changed.
     */
    public Optional<JobState> closeAbandoned(String id, JobError failure) {
        OffsetDateTime now = now();
        String unheld = " WHERE id = ? AND state IN ('QUEUED', 'RUNNING') AND (lease_until IS NULL OR lease_until < ?)";
        if (jdbc.update("UPDATE compression_job SET state = 'CANCELLED', lease_owner = NULL, lease_until = NULL,"
                        + " finished_at = ?, error_code = ?, error_message = ?, updated_at = ?" + unheld + " AND cancel_requested = TRUE",
                now, JobErrorCodes.CANCELLED, "cancelled by request; its worker stopped before finishing", now, id, now) == 1) {
            return Optional.of(JobState.CANCELLED);
        }
        if (jdbc.update("UPDATE compression_job SET state = 'FAILED', lease_owner = NULL, lease_until = NULL, finished_at = ?,"
                        + " error_code = ?, error_message = ?, updated_at = ?" + unheld,
                now, failure.code(), truncate(failure.message()), now, id, now) == 1) {
            return Optional.of(JobState.FAILED);
        }
        return Optional.empty();
    }

    /**
     * Takes or renews the named leader lease for {@code owner} (one API replica dispatches and reconciles at a time);
     * true when {@code owner} holds it until now + {@code lease}.
     */
    public boolean tryLead(String name, String owner, Duration lease) {
        OffsetDateTime now = now();
        if (jdbc.update("UPDATE service_leader SET owner = ?, lease_until = ? WHERE name = ? AND (owner IS NULL OR owner = ?"
                + " OR lease_until < ?)", owner, now.plus(lease), name, owner, now) == 1) {
            return true;
        }
        Integer rows = jdbc.queryForObject("SELECT COUNT(*) FROM service_leader WHERE name = ?", Integer.class, name);
        if (rows != null && rows == 0) {
            try {
                return jdbc.update("INSERT INTO service_leader (name, owner, lease_until) VALUES (?, ?, ?)", name, owner,
                        now.plus(lease)) == 1;
            } catch (DuplicateKeyException e) {
                return false; // another replica created it first
            }
        }
        return false;
    }

    /** Gives the named leader lease up if {@code owner} holds it (a stopping replica), so another takes over at once. */
    public void resign(String name, String owner) {
        jdbc.update("UPDATE service_leader SET owner = NULL, lease_until = NULL WHERE name = ? AND owner = ?", name, owner);
    }

    private static String truncate(String s, int max) {
        return s == null || s.length() <= max ? s : s.substring(0, max - 3) + "...";
    }

    private static String truncate(String s) {
        return s == null || s.length() <= 8000 ? s : s.substring(0, 7997) + "...";
    }

    private static Instant instant(ResultSet rs, String col) throws SQLException {
        OffsetDateTime t = rs.getObject(col, OffsetDateTime.class);
        return t == null ? null : t.toInstant();
    }

    private static Integer integer(ResultSet rs, String col) throws SQLException {
        int v = rs.getInt(col);
        return rs.wasNull() ? null : v;
    }

    private static Job row(ResultSet rs, int n) throws SQLException {
        String errorCode = rs.getString("error_code");
        String resultOutput = rs.getString("result_output");
        return new Job(rs.getString("id"), rs.getLong("seq"), rs.getString("method"), JobState.valueOf(rs.getString("state")),
                rs.getInt("priority"), rs.getString("model"), rs.getString("calibration"), rs.getString("eval_data"),
                rs.getString("output"), rs.getString("params"), rs.getString("sampling"), rs.getString("backend"),
                rs.getString("device"), rs.getString("idempotency_key"), rs.getString("request_hash"),
                instant(rs, "created_at"), instant(rs, "started_at"), instant(rs, "finished_at"), rs.getInt("attempt"),
                rs.getInt("max_attempts"), rs.getString("lease_owner"), instant(rs, "lease_until"),
                rs.getBoolean("cancel_requested"),
                new Progress(rs.getString("progress_stage"), integer(rs, "progress_layer"), integer(rs, "progress_layers"),
                        rs.getDouble("progress_fraction")),
                errorCode == null ? null : new JobError(errorCode, rs.getString("error_message")),
                resultOutput == null ? null : new JobOutput(resultOutput, rs.getString("result_report")),
                rs.getString("executor"), JobResources.fromJson(rs.getString("resources")), kubernetes(rs));
    }

    private static Job.KubernetesStatus kubernetes(ResultSet rs) throws SQLException {
        String job = rs.getString("kubernetes_job");
        return job == null ? null : new Job.KubernetesStatus(job, rs.getString("kubernetes_pod"),
                rs.getString("kubernetes_pod_phase"), rs.getString("kubernetes_detail"));
    }
}

package io.whittle.jobs;

/**
 * The answer to a claim of one named job ({@link JobStore#claimJob}): the job, now held under a lease, or why it
 * was not taken.
 */
public sealed interface JobClaim permits JobClaim.Claimed, JobClaim.Refused {

    /** Why a named job was not claimed. */
    enum Reason {
        /** No job has this id. */
        NOT_FOUND,
        /** The job has ended (possibly just now: cancelled, or its attempts were used up); {@code state} says how. */
        FINISHED,
        /** Another worker holds the job under a lease that has not expired. */
        HELD
    }

    /** The job, claimed: RUNNING under the caller's lease, its attempt counted. */
    record Claimed(Job job) implements JobClaim {
    }

    /**
     * The job was not claimed.
     *
     * @param state   the job's state (null when it does not exist)
     * @param message one line saying why, naming the job (and the holder or the final state)
     */
    record Refused(Reason reason, JobState state, String message) implements JobClaim {
    }
}

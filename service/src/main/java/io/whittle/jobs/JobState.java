package io.whittle.jobs;

/** The life of a job: queued, running (under a worker's lease), then one of three final states. */
public enum JobState {
    QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED;

    /** Whether the job has ended and will not change again. */
    public boolean isFinal() {
        return this == SUCCEEDED || this == FAILED || this == CANCELLED;
    }

    /** Parses a state name as the API spells it, case-insensitively; unknown names are an error naming the choices. */
    public static JobState parse(String s) {
        for (JobState st : values()) {
            if (st.name().equalsIgnoreCase(s.trim())) {
                return st;
            }
        }
        throw new IllegalArgumentException("unknown state '" + s + "'; expected one of QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED");
    }
}

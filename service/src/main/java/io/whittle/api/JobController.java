package io.whittle.api;

import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.Parameter;
import io.swagger.v3.oas.annotations.tags.Tag;
import io.whittle.jobs.Job;
import io.whittle.jobs.JobResources;
import io.whittle.jobs.JobService;
import io.whittle.jobs.JobState;
import io.whittle.jobs.JobStore;
import io.whittle.jobs.JobValidationException;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.springframework.boot.autoconfigure.condition.ConditionalOnExpression;
import org.springframework.http.HttpStatus;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.DeleteMapping;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestHeader;
import org.springframework.web.bind.annotation.RequestMapping;
import org.springframework.web.bind.annotation.RequestParam;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.servlet.mvc.method.annotation.SseEmitter;

/** {@code /api/v1/jobs}: submit, read, list, cancel, report and progress events (roles {@code api} and {@code all}). */
@RestController
@RequestMapping("/api/v1/jobs")
@Tag(name = "jobs")
@ConditionalOnExpression("'${whittle.role:all}'.trim().toLowerCase() != 'worker'")
public class JobController {

    private final JobService jobs;
    private final JobEventStreams events;
    private final int maxPageSize;

    public JobController(JobService jobs, JobEventStreams events, ApiSettings settings) {
        this.jobs = jobs;
        this.events = events;
        this.maxPageSize = settings.maxPageSize();
    }

    /** A page of jobs, newest first, and the cursor of the next page (null on the last). */
    public record JobPage(List<JobView> items, String nextCursor) {
    }

    @PostMapping(consumes = MediaType.APPLICATION_JSON_VALUE, produces = MediaType.APPLICATION_JSON_VALUE)
    @Operation(summary = "Submit a job", description = "Validates everything up front (400 with the fields at fault); "
            + "202 with the job. A retry with the same Idempotency-Key returns the same job.")
    public ResponseEntity<JobView> submit(@RequestBody SubmitJobRequest body,
                                          @Parameter(description = "Makes retries of this request return the same job")
                                          @RequestHeader(value = "Idempotency-Key", required = false) String idempotencyKey) {
        if (body == null) {
            throw JobValidationException.field("body", "a JSON object is required");
        }
        SubmitJobRequest.Sampling s = body.sampling();
        JobService.Submitted submitted = jobs.submit(new JobService.Submission(body.method(), body.model(), body.calibration(),
                body.eval(), body.params(), body.output(), body.backend(), body.priority(),
                s == null ? null : new JobService.Sampling(s.samples(), s.seqLen(), s.seed()), resources(body.resources())),
                idempotencyKey);
        Job job = submitted.job();
        ResponseEntity.BodyBuilder response = ResponseEntity.accepted().location(URI.create("/api/v1/jobs/" + job.id()));
        if (!submitted.created()) {
            response.header("Idempotent-Replayed", "true");
        }
        return response.body(JobView.of(job));
    }

    @GetMapping(value = "/{id}", produces = MediaType.APPLICATION_JSON_VALUE)
    @Operation(summary = "A job's state, progress, error or result")
    public JobView get(@PathVariable("id") String id) {
        return JobView.of(find(id));
    }

    @GetMapping(produces = MediaType.APPLICATION_JSON_VALUE)
    @Operation(summary = "Jobs, newest first, paged with nextCursor")
    public JobPage list(@RequestParam(value = "state", required = false) String state,
                        @RequestParam(value = "method", required = false) String method,
                        @RequestParam(value = "limit", required = false, defaultValue = "50") int limit,
                        @RequestParam(value = "cursor", required = false) String cursor) {
        JobState st = null;
        if (state != null && !state.isBlank()) {
            try {
                st = JobState.parse(state);
            } catch (IllegalArgumentException e) {
                throw JobValidationException.field("state", e.getMessage());
            }
        }
        if (limit < 1 || limit > maxPageSize) {
            throw JobValidationException.field("limit", "must be between 1 and " + maxPageSize + ", got " + limit);
        }
        JobService.Page page = jobs.list(st, method == null || method.isBlank() ? null : method, limit, cursor);
        return new JobPage(page.jobs().stream().map(JobView::of).toList(), page.nextCursor());
    }

    @DeleteMapping(value = "/{id}", produces = MediaType.APPLICATION_JSON_VALUE)
    @Operation(summary = "Cancel a job", description = "A queued job is cancelled at once (200); a running one at its next "
            + "layer boundary (202); 409 when it has already finished.")
    public ResponseEntity<JobView> cancel(@PathVariable("id") String id) {
        JobStore.CancelOutcome outcome = jobs.cancel(id);
        return switch (outcome) {
            case NOT_FOUND -> throw ApiException.jobNotFound(id);
            case ALREADY_FINAL -> throw new ApiException(HttpStatus.CONFLICT, "JOB_ALREADY_FINISHED",
                    "job " + id + " has already finished (" + find(id).state() + ")");
            case CANCELLED -> ResponseEntity.ok(JobView.of(find(id)));
            case REQUESTED -> ResponseEntity.accepted().body(JobView.of(find(id)));
        };
    }

    @GetMapping(value = "/{id}/report", produces = MediaType.APPLICATION_JSON_VALUE)
    @Operation(summary = "The report.json of a succeeded job")
    public ResponseEntity<byte[]> report(@PathVariable("id") String id) throws IOException {
        Job job = find(id);
        if (job.state() != JobState.SUCCEEDED || job.result() == null) {
            throw new ApiException(HttpStatus.CONFLICT, "REPORT_NOT_AVAILABLE",
                    "job " + id + " is " + job.state() + "; a report exists once it has succeeded");
        }
        Path file = Path.of(job.result().report());
        if (!Files.isRegularFile(file)) {
            throw new ApiException(HttpStatus.GONE, "REPORT_GONE", "the report of job " + id + " (" + file
                    + ") no longer exists");
        }
        return ResponseEntity.ok().contentType(MediaType.APPLICATION_JSON).body(Files.readAllBytes(file));
    }

    @GetMapping(value = "/{id}/events", produces = MediaType.TEXT_EVENT_STREAM_VALUE)
    @Operation(summary = "Server-sent events of the job until it ends",
            description = "Event 'state' when the state changes, 'progress' otherwise; data is the job. The stream "
                    + "closes after the event with the final state.")
    public SseEmitter events(@PathVariable("id") String id) {
        return events.open(find(id));
    }

    private static JobResources resources(SubmitJobRequest.Resources r) {
        if (r == null) {
            return null;
        }
        try {
            return new JobResources(r.gpus(), r.gpuResource());
        } catch (IllegalArgumentException e) {
            throw JobValidationException.field(e.getMessage().startsWith("gpus") ? "resources.gpus" : "resources.gpuResource",
                    e.getMessage());
        }
    }

    private Job find(String id) {
        return jobs.get(id).orElseThrow(() -> ApiException.jobNotFound(id));
    }
}

package io.whittle.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The metric-name extraction the dead-panel test relies on, on the query shapes the dashboards use. */
class PromQlNamesTest {

    @Test
    void histogramQuantileWithMatchersRangesAndGrouping() {
        assertThat(PromQlNames.ofExpression("histogram_quantile(0.99, sum by (le, kernel) (rate(whittle_kernel_duration_seconds_bucket"
                + "{kernel=~\"$kernel\", device=~\"a{b}\", instance=~\"$instance\"}[$__rate_interval])))"))
                .containsExactly("whittle_kernel_duration_seconds_bucket");
    }

    @Test
    void binaryOperatorsComparisonsNumbersAndKeywords() {
        assertThat(PromQlNames.ofExpression("max by (device) (a_total{op=~\"x\"} / (b:rate5m{op=\"y\"} > 0)) * 3600 + 1e-9"))
                .containsExactly("a_total", "b:rate5m");
        assertThat(PromQlNames.ofExpression("sum(x offset 5m) and on(instance) y unless ignoring (pod) z or vector(1)"))
                .containsExactly("x", "y", "z");
        assertThat(PromQlNames.ofExpression("sum by (method, outcome) (increase(jobs_total{outcome=\"failed\"}[$__range])) > bool 0"))
                .containsExactly("jobs_total");
        assertThat(PromQlNames.ofExpression("DCGM_FI_DEV_FB_USED{pod=~\"$gpu_pod\"} + DCGM_FI_DEV_FB_FREE"))
                .containsExactly("DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_USED");
    }

    @Test
    void variableQueries() {
        assertThat(PromQlNames.ofVariableQuery("label_values(whittle_jobs_active{state=\"queued\"}, instance)"))
                .containsExactly("whittle_jobs_active");
        assertThat(PromQlNames.ofVariableQuery("query_result(topk(5, rate(http_total[5m])))")).containsExactly("http_total");
        assertThat(PromQlNames.ofVariableQuery("label_values(instance)")).isEmpty();
        assertThat(PromQlNames.ofVariableQuery("prometheus")).isEmpty();
    }
}

package io.whittle.app;

import io.whittle.api.ApiSettings;
import java.util.ArrayList;
import java.util.List;
import org.springframework.boot.web.servlet.FilterRegistrationBean;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.Ordered;

/**
 * The API's servlet filters: API keys on {@code /api/*} (and on {@code /actuator/prometheus} when configured so;
 * health probes stay open), then the request body size limit.
 */
@Configuration(proxyBeanMethods = false)
public class WebConfiguration {

    @Bean
    ApiSettings apiSettings(WhittleProperties props) {
        WhittleProperties.Api a = props.getApi();
        return new ApiSettings(a.getMaxPageSize(), a.getEventsPollInterval(), a.getEventsTimeout());
    }

    @Bean
    FilterRegistrationBean<ApiKeyFilter> apiKeyFilter(WhittleProperties props) {
        WhittleProperties.Security s = props.getSecurity();
        ApiKeyFilter filter = ApiKeyFilter.of(s.getApiKeys(), s.getApiKeyHashesFile());
        List<String> patterns = new ArrayList<>(List.of("/api/*"));
        if (s.isProtectMetrics()) {
            patterns.add("/actuator/prometheus");
        }
        FilterRegistrationBean<ApiKeyFilter> reg = new FilterRegistrationBean<>(filter);
        reg.setUrlPatterns(patterns);
        reg.setOrder(Ordered.HIGHEST_PRECEDENCE + 10);
        reg.setName("whittleApiKeys");
        return reg;
    }

    @Bean
    FilterRegistrationBean<BodySizeLimitFilter> bodySizeLimitFilter(WhittleProperties props) {
        FilterRegistrationBean<BodySizeLimitFilter> reg = new FilterRegistrationBean<>(
                new BodySizeLimitFilter(props.getApi().getMaxBodySize().toBytes()));
        reg.setUrlPatterns(List.of("/api/*"));
        reg.setOrder(Ordered.HIGHEST_PRECEDENCE + 20);
        reg.setName("whittleBodySizeLimit");
        return reg;
    }
}

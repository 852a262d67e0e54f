"""Tracing is configured by the standard OTEL_* variables, and is off when they say nothing."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from quote_serving.observability.tracing import TracingConfigError, tracer_provider_from_env


def exporters(provider) -> list[object]:  # type: ignore[no-untyped-def]
    processors = provider._active_span_processor._span_processors
    return [p.span_exporter for p in processors]


def test_tracing_is_off_unless_configured() -> None:
    assert tracer_provider_from_env({}) is None
    assert tracer_provider_from_env({"OTEL_TRACES_EXPORTER": "none"}) is None


def test_an_otlp_endpoint_turns_the_otlp_exporter_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    provider = tracer_provider_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert provider is not None
    assert [type(e) for e in exporters(provider)] == [OTLPSpanExporter]
    assert provider.resource.attributes["service.name"] == "quote-serving"
    provider.shutdown()


def test_service_name_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "replica-7")
    provider = tracer_provider_from_env({"OTEL_TRACES_EXPORTER": "console"})
    assert provider is not None and provider.resource.attributes["service.name"] == "replica-7"
    assert [type(e) for e in exporters(provider)] == [ConsoleSpanExporter]
    provider.shutdown()


def test_sdk_disabled_wins() -> None:
    env = {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert tracer_provider_from_env(env) is None


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        {"OTEL_TRACES_EXPORTER": "zipkin"},
    ],
)
def test_what_this_build_cannot_do_is_refused_clearly(env: dict[str, str]) -> None:
    with pytest.raises(TracingConfigError, match="not"):
        tracer_provider_from_env(env)

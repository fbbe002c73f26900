"""Rendered manifests of the chart for each CI value set: the fields that matter in a cluster."""

from __future__ import annotations

import json
import re

import pytest
from helm_support import (
    CI_VALUES,
    NAMESPACE,
    RELEASE,
    Render,
    consumer,
    env,
    init_containers,
    kinds,
    mounts,
    one,
    pod_spec,
    secret_refs,
    volumes,
)

FULLNAME = f"{RELEASE}-synthscan"
SHA = "3f5b0c2a4e1d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a"


@pytest.mark.parametrize("values", [p.name for p in CI_VALUES])
def test_every_object_is_release_scoped_and_labelled(render: Render, values: str) -> None:
    docs = render(values)
    assert {"Deployment", "ConfigMap", "Service", "ServiceAccount"} <= kinds(docs)
    for doc in docs:
        meta = doc["metadata"]
        assert meta["name"].startswith(RELEASE), meta["name"]
        assert meta["namespace"] == NAMESPACE
        labels = meta["labels"]
        assert labels["app.kubernetes.io/name"] == "synthscan"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "synthscan-0.1.0"
    selector = one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert selector == {
        "app.kubernetes.io/name": "synthscan",
        "app.kubernetes.io/instance": RELEASE,
    }
    assert one(docs, "Service")["spec"]["selector"] == selector


@pytest.mark.parametrize("values", [p.name for p in CI_VALUES])
def test_pod_and_container_security(render: Render, values: str) -> None:
    docs = render(values)
    pod = pod_spec(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in [*pod["containers"], *pod.get("initContainers", [])]:
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, container["name"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["runAsNonRoot"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert "add" not in sc["capabilities"]
    # Writable paths under the read-only root: /tmp (heartbeat) and the torch cache.
    paths = mounts(consumer(docs))
    assert "emptyDir" in volumes(docs)[paths["/tmp"]["name"]]
    assert "emptyDir" in volumes(docs)[paths["/var/cache/synthscan"]["name"]]
    assert env(docs)["TORCH_HOME"].startswith("/var/cache/synthscan/")
    assert env(docs)["XDG_CACHE_HOME"] == "/var/cache/synthscan"


@pytest.mark.parametrize("values", [p.name for p in CI_VALUES])
def test_probes_hit_the_consumer_http_port(render: Render, values: str) -> None:
    container = consumer(render(values))
    (port,) = container["ports"]
    assert port == {"name": "http", "containerPort": 8080, "protocol": "TCP"}
    assert env(render(values))["SYNTHSCAN_HTTP__PORT"] == "8080"
    expected = {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe, path in expected.items():
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    # Model load + warm-up get 10 minutes before liveness may restart the pod.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_defaults_request_one_gpu_on_gpu_nodes(render: Render) -> None:
    docs = render("default-values.yaml")
    container, pod = consumer(docs), pod_spec(docs)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in container["resources"].get("requests", {})
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert env(docs)["SYNTHSCAN_MODEL__DEVICE"] == "cuda"
    assert "NVIDIA_VISIBLE_DEVICES" not in env(docs)  # set by the device plugin
    assert container["command"] == ["python", "-m", "consumer", "run"]
    assert one(docs, "Deployment")["spec"]["replicas"] == 1
    assert one(docs, "Deployment")["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    spread = pod["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert {"HorizontalPodAutoscaler", "ScaledObject", "ServiceMonitor"}.isdisjoint(kinds(docs))


def test_cpu_only_mode_drops_gpu_scheduling(render: Render) -> None:
    docs = render("cpu-only-values.yaml")
    container, pod = consumer(docs), pod_spec(docs)
    assert not any("gpu" in k for k in container["resources"]["limits"])
    assert "nodeSelector" not in pod
    assert "tolerations" not in pod
    assert env(docs)["SYNTHSCAN_MODEL__DEVICE"] == "cpu"
    assert env(docs)["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert container["resources"]["limits"]["cpu"] == "4"


def test_consumer_settings_reach_the_environment(render: Render) -> None:
    values = env(render("default-values.yaml"))
    assert values["SYNTHSCAN_KAFKA__BOOTSTRAP_SERVERS"] == "kafka-bootstrap.kafka.svc:9092"
    assert values["SYNTHSCAN_KAFKA__GROUP_ID"] == "synthscan"
    assert json.loads(values["SYNTHSCAN_KAFKA__INPUT_TOPICS"]) == ["uploads"]
    assert values["SYNTHSCAN_KAFKA__VERDICT_TOPIC"] == "synthscan.verdicts"
    assert values["SYNTHSCAN_KAFKA__DEAD_LETTER_TOPIC"] == "synthscan.dead-letter"
    assert "SYNTHSCAN_KAFKA__LATEST_VERDICT_TOPIC" not in values
    assert values["SYNTHSCAN_KAFKA__EXACTLY_ONCE"] == "false"
    assert json.loads(values["SYNTHSCAN_KAFKA__LIBRDKAFKA"]) == {"security.protocol": "PLAINTEXT"}
    assert values["SYNTHSCAN_MODEL__MAX_BATCH_SIZE"] == "32"
    assert values["SYNTHSCAN_BATCHING__MAX_WAIT_MS"] == "50"
    assert values["SYNTHSCAN_FETCH__TIMEOUT_S"] == "10"
    assert values["SYNTHSCAN_FETCH__MAX_BYTES"] == "52428800"  # an int, not 5.24288e+07
    assert values["SYNTHSCAN_MODEL__CHECKPOINT"] == "/opt/synthscan/models/model.safetensors"
    assert "SYNTHSCAN_MODEL__CHECKPOINT_SHA256" not in values
    assert all(isinstance(v, str) for v in values.values())


def test_grace_period_covers_batch_flush_commit_close(render: Render) -> None:
    docs = render("default-values.yaml")
    # 30 batch + 10 flush + 5 commit + 5 close = 50 for the consumer, + 10 margin for the kubelet.
    assert env(docs)["SYNTHSCAN_SHUTDOWN__GRACE_S"] == "50"
    assert pod_spec(docs)["terminationGracePeriodSeconds"] == 60
    docs = render(sets={"shutdown.batchSeconds": "120", "shutdown.marginSeconds": "15"})
    assert env(docs)["SYNTHSCAN_SHUTDOWN__GRACE_S"] == "140"
    assert pod_spec(docs)["terminationGracePeriodSeconds"] == 155
    docs = render("existing-secret-values.yaml")
    assert pod_spec(docs)["terminationGracePeriodSeconds"] == 90


def test_configmap_checksum_rolls_pods_only_on_config_change(render: Render) -> None:
    def checksum(sets: dict[str, str]) -> str:
        template = one(render(sets=sets), "Deployment")["spec"]["template"]
        return str(template["metadata"]["annotations"]["checksum/config"])

    base = checksum({})
    assert len(base) == 64
    assert checksum({"batching.maxBatchSize": "16"}) != base
    assert checksum({"podLabels.team": "trust"}) == base


def test_keda_scales_on_group_lag_capped_at_partitions(render: Render) -> None:
    docs = render("keda-values.yaml")
    assert "replicas" not in one(docs, "Deployment")["spec"]  # the autoscaler owns the count
    scaled = one(docs, "ScaledObject")["spec"]
    assert scaled["scaleTargetRef"]["name"] == FULLNAME
    assert scaled["minReplicaCount"] == 2
    assert scaled["maxReplicaCount"] == 24  # kafka.partitions
    triggers = scaled["triggers"]
    assert [t["metadata"]["topic"] for t in triggers] == ["uploads", "uploads.retry"]
    for trigger in triggers:
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert meta["bootstrapServers"] == "b-1.kafka.internal:9096,b-2.kafka.internal:9096"
        assert meta["consumerGroup"] == "synthscan-prod"
        assert meta["lagThreshold"] == "800"
        assert meta["allowIdleConsumers"] == "false"
        assert meta["sasl"] == "scram_sha512"
        assert meta["tls"] == "enable"
        assert trigger["authenticationRef"]["name"] == FULLNAME
    down = scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= 300
    assert down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 120}]
    auth = {
        r["parameter"]: (r["name"], r["key"])
        for r in one(docs, "TriggerAuthentication")["spec"]["secretTargetRef"]
    }
    assert auth == {
        "username": ("kafka-credentials", "username"),
        "password": ("kafka-credentials", "password"),
        "ca": ("kafka-ca", "ca.crt"),
    }


def test_keda_explicit_max_and_plaintext_trigger(render: Render) -> None:
    scaled = one(render(sets={"keda.enabled": "true", "keda.maxReplicaCount": "6"}), "ScaledObject")
    assert scaled["spec"]["maxReplicaCount"] == 6
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"]["topic"] == "uploads"
    assert "sasl" not in trigger["metadata"]
    assert "authenticationRef" not in trigger


def test_hpa_alternative(render: Render) -> None:
    docs = render(sets={"hpa.enabled": "true", "kafka.partitions": "8"})
    spec = one(docs, "HorizontalPodAutoscaler")["spec"]
    assert spec["maxReplicas"] == 8
    (metric,) = spec["metrics"]
    assert metric["external"]["metric"]["selector"]["matchLabels"]["consumergroup"] == "synthscan"
    assert "ScaledObject" not in kinds(docs)
    assert "replicas" not in one(docs, "Deployment")["spec"]


def test_service_monitor_scrapes_metrics_port(render: Render) -> None:
    docs = render("servicemonitor-values.yaml")
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "15s"
    service = one(docs, "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (port,) = service["spec"]["ports"]
    assert port["name"] == "metrics"
    assert port["targetPort"] == "http"


def test_checkpoint_from_model_image_is_copied_then_verified(render: Render) -> None:
    docs = render("servicemonitor-values.yaml")
    inits = init_containers(docs)
    assert list(inits) == ["copy-model", "verify-checkpoint"]
    copy = inits["copy-model"]
    assert copy["image"] == "ghcr.io/synthscan/models:glff-v3"
    copy_env = {e["name"]: e["value"] for e in copy["env"]}
    assert copy_env == {"SRC": "/model/glff.safetensors", "DST": "/models/glff.safetensors"}
    verify = inits["verify-checkpoint"]
    assert "sha256sum -c" in verify["command"][-1]
    assert {e["name"]: e["value"] for e in verify["env"]} == {
        "CHECKPOINT": "/models/glff.safetensors",
        "SHA256": SHA,
    }
    assert verify["image"] == consumer(docs)["image"]
    assert volumes(docs)["model"]["emptyDir"]["sizeLimit"] == "2Gi"
    assert mounts(consumer(docs))["/models"]["readOnly"] is True
    assert env(docs)["SYNTHSCAN_MODEL__CHECKPOINT"] == "/models/glff.safetensors"
    assert env(docs)["SYNTHSCAN_MODEL__CHECKPOINT_SHA256"] == SHA


def test_checkpoint_from_pvc(render: Render) -> None:
    docs = render("keda-values.yaml")
    claim = volumes(docs)["model"]["persistentVolumeClaim"]
    assert claim == {"claimName": "synthscan-models", "readOnly": True}
    mount = mounts(consumer(docs))["/models"]
    assert mount["subPath"] == "glff/v3"
    assert mounts(init_containers(docs)["verify-checkpoint"])["/models"]["subPath"] == "glff/v3"
    assert env(docs)["SYNTHSCAN_MODEL__CHECKPOINT_SHA256"] == SHA  # lower-cased


def test_existing_secrets_for_sasl_and_mutual_tls(render: Render) -> None:
    docs = render("existing-secret-values.yaml")
    assert secret_refs(docs) == {
        "SYNTHSCAN_KAFKA__SASL_USERNAME": ("synthscan-kafka-user", "user"),
        "SYNTHSCAN_KAFKA__SASL_PASSWORD": ("synthscan-kafka-user", "pass"),
    }
    tls_mount = mounts(consumer(docs))["/etc/synthscan/kafka-tls"]
    assert tls_mount["readOnly"] is True
    assert volumes(docs)[tls_mount["name"]]["secret"]["secretName"] == "synthscan-kafka-tls"
    rdk = json.loads(env(docs)["SYNTHSCAN_KAFKA__LIBRDKAFKA"])
    assert rdk == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
        "ssl.ca.location": "/etc/synthscan/kafka-tls/ca.pem",
        "ssl.certificate.location": "/etc/synthscan/kafka-tls/client.pem",
        "ssl.key.location": "/etc/synthscan/kafka-tls/client.key",
        "ssl.endpoint.identification.algorithm": "https",
        "transaction.timeout.ms": 120000,
    }
    assert env(docs)["SYNTHSCAN_KAFKA__EXACTLY_ONCE"] == "true"
    assert not any("SASL" in key for key in one(docs, "ConfigMap")["data"])  # secrets stay secret


_SECRET_NAME = re.compile(r"password|secret|token", re.IGNORECASE)


@pytest.mark.parametrize("values", [p.name for p in CI_VALUES])
def test_no_secret_in_env_literals_or_configmaps(render: Render, values: str) -> None:
    """Secrets reach the pod only as secretKeyRef env vars or mounted Secret files."""
    docs = render(values)
    spec = pod_spec(docs)
    for container in [*spec["containers"], *spec.get("initContainers", [])]:
        literal = [v["name"] for v in container.get("env", []) if "value" in v]
        assert not [name for name in literal if _SECRET_NAME.search(name)], container["name"]
    for config_map in (d for d in docs if d["kind"] == "ConfigMap"):
        for key, value in config_map["data"].items():
            assert not _SECRET_NAME.search(key), key
            if value.lstrip().startswith("{"):  # the librdkafka JSON
                assert not [k for k in json.loads(value) if _SECRET_NAME.search(k)], key
    if "SASL" in env(docs)["SYNTHSCAN_KAFKA__LIBRDKAFKA"]:
        assert "SYNTHSCAN_KAFKA__SASL_PASSWORD" in secret_refs(docs)
        tls = volumes(docs)["kafka-tls"]["secret"]["secretName"]
        ca = json.loads(env(docs)["SYNTHSCAN_KAFKA__LIBRDKAFKA"])["ssl.ca.location"]
        mount = mounts(consumer(docs))["/etc/synthscan/kafka-tls"]
        assert mount["readOnly"] is True and mount["name"] == "kafka-tls" and tls
        assert ca.startswith("/etc/synthscan/kafka-tls/")


def test_pdb_allows_evicting_idle_unready_pods(render: Render) -> None:
    pdb = one(render("default-values.yaml"), "PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert "PodDisruptionBudget" not in kinds(render(sets={"pdb.enabled": "false"}))

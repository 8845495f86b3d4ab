"""`tfspec launch FILE --emit tfjob`: the Kubeflow TFJob and its ConfigMap, checked
against the vendored CRD and the operator's admission rules, and run here as the
training operator (v1.9.0) would run it on a cluster: one local process per replica,
each with the TF_CONFIG the operator's genTFConfigJSONStr writes."""

from __future__ import annotations

import copy
import io
import json
import os
import random
import shutil
import string
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml  # a real YAML parser reads what tfspec writes (PyYAML: through Ray)
from run_processes import all_succeed

from tfspec.jobs import tfjob, yamltext
from tfspec.jobs.launch import free_ports

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "registry.example.com/ml/tfspec:0.1"


def tfspec(*args: str, cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tfspec", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The multi-worker example and its data, as a user's project folder."""
    folder = tmp_path_factory.mktemp("project")
    (folder / "data").mkdir()
    shutil.copy(ROOT / "examples" / "data" / "digits.npz", folder / "data")
    shutil.copy(ROOT / "examples" / "multi_worker.tfspec", folder / "job.tfspec")
    return folder


@pytest.fixture(scope="module")
def manifest(project: Path) -> str:
    result = tfspec("launch", "job.tfspec", "--emit", "tfjob", "--image", IMAGE,
                    "--workers", "2", "--storage", "tfspec-runs", "--set", "epochs=1",
                    "--cpus", "2", "--memory", "4Gi", "-o", "job.yaml", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "kubectl apply -f job.yaml" in result.stderr
    return (project / "job.yaml").read_text()


def documents(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    configmap, job = yaml.safe_load_all(text)
    assert (configmap["kind"], job["kind"]) == ("ConfigMap", "TFJob")
    return configmap, job


# -- the manifest --------------------------------------------------------------------------


def test_the_manifest_holds_the_resolved_spec_and_passes_the_checks(manifest: str):
    configmap, job = documents(manifest)
    assert job["apiVersion"] == "kubeflow.org/v1"
    assert job["metadata"]["name"] == "digits-multi-worker"
    replicas = job["spec"]["tfReplicaSpecs"]
    assert {k: v["replicas"] for k, v in replicas.items()} == {"Chief": 1, "Worker": 1}
    spec = configmap["data"]["job.tfspec"]
    assert "param epochs = 1" in spec and "--set epochs=1" in spec  # the resolved value
    container = replicas["Worker"]["template"]["spec"]["containers"][0]
    assert container["name"] == "tensorflow" and container["image"] == IMAGE
    assert container["command"][:3] == ["tfspec", "run", "/workspace/job.tfspec"]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    assert tfjob.check([configmap, job]) == []
    assert tfjob.schema_problems(job) == []


def broken(job: dict[str, Any], how: str) -> dict[str, Any]:
    job = copy.deepcopy(job)
    replicas = job["spec"]["tfReplicaSpecs"]
    if how == "no image":
        del replicas["Worker"]["template"]["spec"]["containers"][0]["image"]
    elif how == "two chiefs":
        replicas["Master"] = copy.deepcopy(replicas["Chief"])
    elif how == "bad name":
        job["metadata"]["name"] = "Digits_MLP"
    elif how == "renamed container":
        for spec in replicas.values():
            spec["template"]["spec"]["containers"][0]["name"] = "trainer"
    elif how == "replicas as text":
        replicas["Worker"]["replicas"] = "two"
    elif how == "a typo":
        job["spec"]["tfReplicaSpec"] = job["spec"].pop("tfReplicaSpecs")
    elif how == "a float cpu":
        replicas["Chief"]["template"]["spec"]["containers"][0]["resources"]["limits"][
            "cpu"] = 0.5
    return job


@pytest.mark.parametrize("how, expected", [
    ("no image", "spec.tfReplicaSpecs[Worker].template.spec.containers[0].image: "
                 "Required value"),
    ("two chiefs", "must not have more than 1 Chief or Master role"),
    ("bad name", "metadata.name: Invalid value: 'Digits_MLP': a DNS-1035 label"),
    ("renamed container", "must have at least one container with name tensorflow"),
    ("replicas as text", "spec.tfReplicaSpecs.Worker.replicas: 'two' is not of type "
                         "'integer'"),
    ("a typo", "'tfReplicaSpec' was unexpected"),
    ("a float cpu", "resources.limits.cpu: 0.5 is not valid under any of the given schemas"),
])
def test_a_manifest_broken_on_purpose_fails(manifest: str, how: str, expected: str):
    configmap, job = documents(manifest)
    problems = tfjob.check([configmap, broken(job, how)])
    assert any(expected in p for p in problems), problems


def test_a_missing_image_also_fails_the_schema_where_the_crd_requires_it(manifest: str):
    # the CRD requires a container's name (not its image: that is the webhook's rule)
    _, job = documents(manifest)
    del job["spec"]["tfReplicaSpecs"]["Chief"]["template"]["spec"]["containers"][0]["name"]
    assert any("'name' is a required property" in p for p in tfjob.schema_problems(job))


def test_the_vendored_crd_is_the_tfjob_crd_of_v1_9_0():
    crd = json.loads((ROOT / "spec" / "crds" / tfjob.CRD_FILE).read_text())
    assert crd["metadata"]["name"] == "tfjobs.kubeflow.org"
    assert [v["name"] for v in crd["spec"]["versions"]] == ["v1"]
    notice = (ROOT / "spec" / "crds" / "README.md").read_text()
    assert "v1.9.0" in notice and "Apache License 2.0" in notice


def test_a_bad_name_is_a_clear_error_and_nothing_is_written(project: Path):
    (project / "old.yaml").write_text("keep me\n")
    result = tfspec("launch", "job.tfspec", "--emit", "tfjob", "--image", IMAGE,
                    "--name", "Digits_MLP", "-o", "old.yaml", cwd=project)
    assert result.returncode == 1
    assert "would be rejected (nothing written)" in result.stderr
    assert "DNS-1035" in result.stderr and "--name" in result.stderr
    assert "Traceback" not in result.stderr
    assert (project / "old.yaml").read_text() == "keep me\n"


def test_emit_without_image_is_a_usage_error_and_needs_no_tensorflow(project: Path):
    result = tfspec("launch", "job.tfspec", "--emit", "tfjob", cwd=project)
    assert result.returncode == 2 and "--emit tfjob needs --image IMAGE" in result.stderr
    # the manifest is text: written without importing TensorFlow (nor numpy, keras)
    code = ("import sys; from tfspec.cli import main\n"
            f"rc = main(['launch', 'job.tfspec', '--emit', 'tfjob', '--image', {IMAGE!r}])\n"
            "heavy = [m for m in ('tensorflow', 'keras', 'numpy') if m in sys.modules]\n"
            "print(rc, heavy, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=project, timeout=60)
    assert result.stderr.strip().endswith("0 []"), result.stderr
    assert "kind: TFJob" in result.stdout


def test_a_spec_that_is_not_multi_worker_is_refused(tmp_path: Path):
    shutil.copy(ROOT / "examples" / "iris_mlp.tfspec", tmp_path / "iris.tfspec")
    result = tfspec("launch", "iris.tfspec", "--emit", "tfjob", "--image", IMAGE,
                    cwd=tmp_path)
    assert result.returncode == 1 and "error[E503]" in result.stderr


def test_job_names_from_spec_names_are_dns_1035_labels():
    assert tfjob.job_name("digits-multi-worker", 4) == "digits-multi-worker"
    assert tfjob.job_name("Digits_MLP v2", 2) == "digits-mlp-v2"
    assert tfjob.job_name("3d-unet", 2) == "tfspec-3d-unet"
    long = tfjob.job_name("x" * 80, 12)
    assert len(f"{long}-worker-11") == 63 and tfjob.DNS1035.fullmatch(long)


def test_the_yaml_reads_back_as_the_same_data():
    rng = random.Random(0)
    alphabet = string.printable + "é\u2028\x85" + "-:.0123456789eE_" * 3
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        value = {"k": text, "l": [text, {"m": text}, []], text: {}, "n": [1, 2.5, None, True]}
        assert yaml.safe_load(yamltext.dump(value)) == value, repr(text)
    assert yamltext.scalar("4Gi") == "4Gi" and yamltext.scalar("2") == '"2"'
    assert yamltext.dump({"spec": "a\n  b\n"}) == "spec: |\n  a\n    b\n"


# -- the operator, emulated ------------------------------------------------------------------


def gen_tf_config(job: dict[str, Any], rtype: str, index: int) -> str | None:
    """TF_CONFIG as the operator writes it (v1.9.0, pkg/controller.v1/tensorflow:
    genTFConfigJSONStr and genClusterSpec; none when the job has one replica, as
    isDistributed says; no CUSTOM_CLUSTER_DOMAIN)."""
    specs = job["spec"]["tfReplicaSpecs"]
    if sum(spec.get("replicas", 1) for spec in specs.values()) <= 1:
        return None
    cluster = {}
    for rt, spec in specs.items():
        port = next((p["containerPort"] for c in spec["template"]["spec"]["containers"]
                     if c["name"] == "tensorflow" for p in c.get("ports", [])
                     if p.get("name") == "tfjob-port"), 2222)
        name, namespace = job["metadata"]["name"], job["metadata"].get("namespace", "default")
        cluster[rt.lower()] = [f"{name}-{rt.lower()}-{i}.{namespace}.svc:{port}"
                               for i in range(spec.get("replicas", 1))]
    config = {"cluster": dict(sorted(cluster.items())),  # Go marshals a map sorted
              "task": {"type": rtype.lower(), "index": index},
              "environment": "cloud"}
    return json.dumps(config, separators=(",", ":"))  # Go's json.Marshal: compact


class Pod:
    """One replica's container as a local process: its volumes are folders under
    `base` (a PVC's by claim, shared by every pod; a ConfigMap's files written out),
    its other paths its own folder's."""

    def __init__(self, base: Path, name: str, pod_spec: dict[str, Any],
                 configmaps: dict[str, dict[str, Any]]):
        self.own = base / "pods" / name
        self.mounts: list[tuple[str, Path]] = []
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        container = next(c for c in pod_spec["containers"] if c["name"] == "tensorflow")
        self.container = container
        for mount in sorted(container.get("volumeMounts", []), key=lambda m: m["mountPath"]):
            volume = volumes[mount["name"]]
            if "persistentVolumeClaim" in volume:
                local = base / "pvc" / volume["persistentVolumeClaim"]["claimName"]
            else:
                local = base / "configmaps" / volume["configMap"]["name"]
                local.mkdir(parents=True, exist_ok=True)
                for key, text in configmaps[volume["configMap"]["name"]]["data"].items():
                    (local / key).write_text(text)
            if "subPath" in mount:
                local = local / mount["subPath"]
            outer = self.path(mount["mountPath"])
            if local.is_file():  # a file mounted over a folder's entry: the pod sees it there
                outer.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(local, outer)
            else:
                self.mounts.append((mount["mountPath"], local))

    def path(self, path: str) -> Path:
        for mount, local in sorted(self.mounts, key=lambda m: -len(m[0])):
            if path == mount or path.startswith(mount + "/"):
                return local / path[len(mount):].lstrip("/")
        return self.own / path.lstrip("/")

    def start(self, tf_config: str | None) -> subprocess.Popen:
        argv = self.container["command"] + self.container.get("args", [])
        assert argv[0] == "tfspec"  # the image's entry point: this tfspec here
        argv = [sys.executable, "-m", "tfspec"] + [
            str(self.path(a)) if a.startswith("/") else a for a in argv[1:]]
        env = {**os.environ, **{e["name"]: e["value"] for e in self.container.get("env", [])}}
        if tf_config is not None:
            env["TF_CONFIG"] = tf_config
        cwd = self.path(self.container.get("workingDir", "/"))
        cwd.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)


def on_localhost(tf_config: str, ports: dict[str, int]) -> str:
    """The services' host names -> 127.0.0.1 ports (one per service)."""
    config = json.loads(tf_config)
    for rt, hosts in config["cluster"].items():
        config["cluster"][rt] = [f"127.0.0.1:{ports[h]}" for h in hosts]
    return json.dumps(config)


def saved_weights(model_file: Path) -> dict[str, np.ndarray]:
    """A .keras file's variables (the model's and the optimizer's) by their path in its
    model.weights.h5, read without importing Keras (seconds of CPU)."""
    import h5py

    with zipfile.ZipFile(model_file) as archive:
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
    found: dict[str, np.ndarray] = {}
    weights.visititems(lambda name, item: found.__setitem__(name, item[()])
                       if isinstance(item, h5py.Dataset) else None)
    return found


@pytest.mark.slow
def test_the_emulated_operator_trains_as_tfspec_launch_does(manifest: str, project: Path,
                                                            tmp_path: Path):
    configmap, job = documents(manifest)
    # the PersistentVolumeClaim: the project's data, as the user copied it there
    shutil.copytree(project / "data", tmp_path / "pvc" / "tfspec-runs" / "data")
    pods, configs = [], []
    for rtype, spec in job["spec"]["tfReplicaSpecs"].items():
        for index in range(spec["replicas"]):
            name = f"{job['metadata']['name']}-{rtype.lower()}-{index}"
            pods.append(Pod(tmp_path, name, spec["template"]["spec"],
                            {configmap["metadata"]["name"]: configmap}))
            configs.append(gen_tf_config(job, rtype, index))
    assert json.loads(configs[0]) == {
        "cluster": {"chief": ["digits-multi-worker-chief-0.default.svc:2222"],
                    "worker": ["digits-multi-worker-worker-0.default.svc:2222"]},
        "task": {"type": "chief", "index": 0}, "environment": "cloud"}
    hosts = sorted({h for hs in json.loads(configs[0])["cluster"].values() for h in hs})
    ports = dict(zip(hosts, free_ports(len(hosts)), strict=True))
    processes = [pod.start(on_localhost(c, ports)) for pod, c in zip(pods, configs,
                                                                        strict=True)]
    all_succeed(processes)
    run_dir = tmp_path / "pvc" / "tfspec-runs" / "runs" / "digits-multi-worker" / \
        "digits-multi-worker"
    assert sorted(p.name for p in (run_dir / "worker-0").iterdir()) == ["log.txt"]
    emulated = saved_weights(run_dir / "model.keras")

    # the same job on this machine's own launcher
    local = tfspec("launch", "job.tfspec", "--workers", "2", "--set", "epochs=1", cwd=project)
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    (local_dir,) = (project / "runs" / "digits-multi-worker").glob("2*")
    launched = saved_weights(local_dir / "model.keras")
    assert sorted(emulated) == sorted(launched)
    assert sum(name.startswith("layers/") for name in emulated) == 4  # two Dense layers
    for name, value in launched.items():  # the layers' and the optimizer's (Adam) state
        np.testing.assert_allclose(emulated[name], value, rtol=1e-5, atol=1e-6,
                                   err_msg=name)

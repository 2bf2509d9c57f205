//! `docker/` as far as it can be checked without a Docker engine (none on the development
//! machine): the compose file parses, every host path it mounts exists, every `TRIAGENT…`
//! variable it gives the service is one the service reads, the service's published port is the
//! one it listens on, and the images point the binary at the folders they copy.

use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn compose() -> Yaml {
    let docs = YamlLoader::load_from_str(&read(&repo().join("docker/compose.yaml")))
        .expect("docker/compose.yaml parses as YAML");
    docs.into_iter().next().expect("one document")
}

fn base_toml() -> toml::Table {
    read(&repo().join("config/base.toml")).parse().expect("config/base.toml parses")
}

/// Whether `TRIAGENT__A__B…` names a key of config/base.toml (every setting has one there).
fn is_setting(var: &str, base: &toml::Table) -> bool {
    let Some(path) = var.strip_prefix("TRIAGENT__") else { return false };
    let mut node = toml::Value::Table(base.clone());
    for part in path.split("__") {
        let key = part.to_ascii_lowercase();
        let next = match &node {
            toml::Value::Table(t) => t.get(&key).cloned(),
            _ => None,
        };
        // Per-agent overrides take any key of agents.default.
        let next = next.or_else(|| {
            matches!(
                key.as_str(),
                "symptom_classifier"
                    | "condition_matcher"
                    | "treatment_retriever"
                    | "emergency_detector"
            )
            .then(|| base["agents"]["default"].clone())
        });
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    !matches!(node, toml::Value::Table(_))
}

/// Variables the binary reads besides the settings.
const OTHER_VARIABLES: [&str; 3] = ["TRIAGENT_ENV", "TRIAGENT_LOG", "TRIAGENT_CONFIG_DIR"];

#[test]
fn the_setting_check_knows_settings_from_typos() {
    let base = base_toml();
    assert!(is_setting("TRIAGENT__DATABASE__URL", &base));
    assert!(is_setting("TRIAGENT__AGENTS__CONDITION_MATCHER__DEADLINE_MS", &base));
    assert!(!is_setting("TRIAGENT__DATABASE__URI", &base));
    assert!(!is_setting("TRIAGENT__DATABASE", &base), "a section is not a value");
    assert!(is_setting("TRIAGENT__TELEMETRY__OTLP_ENDPOINT", &base));
    assert!(!is_setting("TRIAGENT__TELEMETRY__ENDPOINT", &base));
}

#[test]
fn compose_mounts_existing_paths_and_sets_only_real_settings() {
    let doc = compose();
    let services = doc["services"].as_hash().expect("services");
    let names: Vec<&str> = services.keys().filter_map(Yaml::as_str).collect();
    for needed in
        ["triagent", "postgres", "nats", "otel-collector", "jaeger", "prometheus", "grafana"]
    {
        assert!(names.contains(&needed), "compose lacks {needed}: {names:?}");
    }
    let docker = repo().join("docker");
    for (name, service) in services {
        let name = name.as_str().unwrap();
        for volume in service["volumes"].as_vec().into_iter().flatten() {
            let spec = volume.as_str().expect("short volume syntax");
            let host = spec.split(':').next().unwrap();
            if host.starts_with('.') {
                let path = docker.join(host);
                assert!(
                    path.exists(),
                    "{name} mounts {host}, which does not exist ({})",
                    path.display()
                );
            } else {
                assert!(
                    doc["volumes"][host].is_null()
                        || doc["volumes"]
                            .as_hash()
                            .is_some_and(|v| v.contains_key(&Yaml::String(host.into()))),
                    "{name}: unknown named volume {host}"
                );
            }
        }
        if let Some(build) = service["build"].as_hash() {
            let context = docker.join(build[&Yaml::String("context".into())].as_str().unwrap());
            let file = context.join(build[&Yaml::String("dockerfile".into())].as_str().unwrap());
            assert!(file.is_file(), "{name} builds {}, which does not exist", file.display());
        }
    }
    let base = base_toml();
    let triagent = &doc["services"]["triagent"];
    let env = triagent["environment"].as_hash().expect("triagent environment as a map");
    for key in env.keys() {
        let var = key.as_str().unwrap();
        assert!(
            OTHER_VARIABLES.contains(&var) || is_setting(var, &base),
            "the service does not read {var}"
        );
    }
    let port = base["server"]["port"].as_integer().unwrap();
    let published = triagent["ports"].as_vec().expect("ports");
    assert!(
        published.iter().filter_map(Yaml::as_str).any(|p| p.ends_with(&format!(":{port}"))),
        "the service listens on {port}: {published:?}"
    );
}

#[test]
fn the_images_point_the_binary_at_what_they_copy() {
    let base = base_toml();
    for file in ["docker/Dockerfile", "docker/Dockerfile.cuda"] {
        let text = read(&repo().join(file));
        for needed in [
            "TRIAGENT_CONFIG_DIR=/app/config",
            "TRIAGENT__MODELS__DIR=/app/models",
            "TRIAGENT__MODELS__KB_DIR=/app/kb",
            "/app/models",
            "/app/kb",
            "/app/config",
            "--locked -p triagent",
        ] {
            assert!(text.contains(needed), "{file} lacks {needed}");
        }
        for var in text
            .split_whitespace()
            .filter_map(|w| w.split('=').next())
            .filter(|w| w.starts_with("TRIAGENT"))
        {
            assert!(
                OTHER_VARIABLES.contains(&var) || is_setting(var, &base),
                "{file}: the service does not read {var}"
            );
        }
        let port = base["server"]["port"].as_integer().unwrap();
        assert!(text.contains(&format!("EXPOSE {port}")), "{file} exposes {port}");
        // Every agent's committed model is copied.
        for agent in
            ["symptom-classifier", "condition-matcher", "treatment-retriever", "emergency-detector"]
        {
            assert!(text.contains(agent), "{file} does not copy {agent}'s model");
            assert!(repo().join("agents").join(agent).join("model/weights.bpk").is_file());
        }
    }
    assert!(read(&repo().join("docker/Dockerfile.cuda")).contains("--features cuda"));
}

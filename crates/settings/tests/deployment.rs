//! `docker/` as far as it can be checked without a Docker engine (none on the development
//! machine): the compose file parses, every host path it mounts exists, every `TRIAGENT…`
//! variable it gives a Triagent service is one the service reads, the replicas have names,
//! spools and outboxes of their own and share one database and one NATS, the load balancer
//! alone publishes the API's port and reaches every replica on the port it listens on without
//! buffering the event stream, Prometheus scrapes every replica, and the images point the binary
//! at the folders they copy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn docker() -> PathBuf {
    repo().join("docker")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn compose_text() -> String {
    read(&docker().join("compose.yaml"))
}

fn compose() -> Yaml {
    parse_compose(&compose_text())
}

/// The compose file as compose reads it: aliases and merge keys resolved.
fn parse_compose(text: &str) -> Yaml {
    let docs = YamlLoader::load_from_str(text).expect("docker/compose.yaml parses as YAML");
    merge_keys(docs.into_iter().next().expect("one document"))
}

/// Resolves YAML merge keys (`<<: *anchor`, or a list of them), which compose applies and
/// yaml-rust2 leaves as a key named `<<` (it does copy the aliased nodes). A mapping's own keys
/// win over merged ones, and an earlier merged mapping over a later one.
fn merge_keys(node: Yaml) -> Yaml {
    match node {
        Yaml::Array(items) => Yaml::Array(items.into_iter().map(merge_keys).collect()),
        Yaml::Hash(map) => {
            let merge = Yaml::String("<<".into());
            let mut out = Hash::new();
            let mut merged = Vec::new();
            for (key, value) in map {
                if key == merge {
                    match value {
                        Yaml::Array(list) => merged.extend(list),
                        one => merged.push(one),
                    }
                } else {
                    out.insert(key, merge_keys(value));
                }
            }
            for source in merged {
                let Yaml::Hash(source) = merge_keys(source) else {
                    panic!("`<<` merges mappings only")
                };
                for (key, value) in source {
                    if !out.contains_key(&key) {
                        out.insert(key, value);
                    }
                }
            }
            Yaml::Hash(out)
        }
        other => other,
    }
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

/// A value as a string: compose and the settings take `8080` and `"8080"` alike.
fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        Yaml::Null => Some(String::new()),
        _ => None,
    }
}

/// A service's environment, written as a map or as a list of `NAME=value`.
fn environment(name: &str, service: &Yaml) -> BTreeMap<String, String> {
    match &service["environment"] {
        Yaml::Hash(map) => map
            .iter()
            .map(|(k, v)| {
                let key = k.as_str().unwrap_or_else(|| panic!("{name}: environment key {k:?}"));
                let value = scalar(v).unwrap_or_else(|| panic!("{name}: {key} is not a scalar"));
                (key.to_string(), value)
            })
            .collect(),
        Yaml::Array(list) => list
            .iter()
            .map(|item| {
                let item = item.as_str().unwrap_or_else(|| panic!("{name}: environment {item:?}"));
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The `TRIAGENT…=value` pairs of a Dockerfile's ENV instructions.
fn dockerfile_env(text: &str) -> BTreeMap<String, String> {
    text.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter(|(k, _)| k.starts_with("TRIAGENT"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The Triagent images: a service built from one of them is a replica of the service.
const IMAGES: [&str; 2] = ["docker/Dockerfile", "docker/Dockerfile.cuda"];

/// A service of the compose file built from a Triagent image, with what it runs with.
struct Triagent<'a> {
    name: &'a str,
    service: &'a Yaml,
    env: BTreeMap<String, String>,
    /// The image's ENV.
    image_env: BTreeMap<String, String>,
    /// The image's WORKDIR, where the settings' relative paths start.
    workdir: PathBuf,
}

impl Triagent<'_> {
    /// A setting as this service reads it: from its environment, the image's, then
    /// config/{TRIAGENT_ENV}.toml, then config/base.toml.
    fn setting(&self, section: &str, key: &str) -> String {
        let var =
            format!("TRIAGENT__{}__{}", section.to_ascii_uppercase(), key.to_ascii_uppercase());
        if let Some(v) = self.env.get(&var).or_else(|| self.image_env.get(&var)) {
            return v.clone();
        }
        let environment = self
            .env
            .get("TRIAGENT_ENV")
            .or_else(|| self.image_env.get("TRIAGENT_ENV"))
            .map_or("development", String::as_str);
        let overlay = repo().join(format!("config/{environment}.toml"));
        let overlay: toml::Table =
            if overlay.is_file() { read(&overlay).parse().unwrap() } else { toml::Table::new() };
        let from = |t: &toml::Table| t.get(section).and_then(|s| s.get(key)).cloned();
        match from(&overlay).or_else(|| from(&base_toml())) {
            Some(toml::Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => panic!("{section}.{key} is not in config/base.toml"),
        }
    }

    fn number(&self, section: &str, key: &str) -> u64 {
        let v = self.setting(section, key);
        v.parse().unwrap_or_else(|_| panic!("{}: {section}.{key} = {v:?}", self.name))
    }

    /// Where a file setting is in the container.
    fn path(&self, section: &str, key: &str) -> PathBuf {
        self.workdir.join(self.setting(section, key))
    }

    /// The volume (named, or a host path) and the path within it that keep `path`: the writable
    /// mount nearest to it. None: the file is in the container, lost when it is recreated.
    fn kept_on(&self, path: &Path) -> Option<(String, PathBuf)> {
        self.service["volumes"]
            .as_vec()?
            .iter()
            .filter_map(Yaml::as_str)
            .filter_map(|spec| {
                let mut parts = spec.split(':');
                let (source, target, mode) = (parts.next()?, parts.next()?, parts.next());
                let within = path.strip_prefix(target).ok()?;
                (mode != Some("ro")).then(|| (target.len(), source, within.to_path_buf()))
            })
            .max_by_key(|(len, ..)| *len)
            .map(|(_, source, within)| (source.to_string(), within))
    }
}

/// Every service built from a Triagent image, in the order of the file.
fn triagents(doc: &Yaml) -> Vec<Triagent<'_>> {
    let images: Vec<PathBuf> =
        IMAGES.iter().map(|f| repo().join(f).canonicalize().unwrap()).collect();
    let mut out = Vec::new();
    for (name, service) in doc["services"].as_hash().expect("services") {
        let (Some(context), Some(file)) =
            (service["build"]["context"].as_str(), service["build"]["dockerfile"].as_str())
        else {
            continue;
        };
        let Ok(file) = docker().join(context).join(file).canonicalize() else { continue };
        if !images.contains(&file) {
            continue;
        }
        let name = name.as_str().unwrap();
        let image = read(&file);
        let workdir = image
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("WORKDIR "))
            .unwrap_or_else(|| panic!("{} has no WORKDIR", file.display()));
        out.push(Triagent {
            name,
            service,
            env: environment(name, service),
            image_env: dockerfile_env(&image),
            workdir: PathBuf::from(workdir.trim()),
        });
    }
    out
}

/// The host port and the container port of each port a service publishes (`HOST:CONTAINER`,
/// `ADDRESS:HOST:CONTAINER`, with or without `/tcp`; a container port alone gets a random host
/// port, which is no published API).
fn published(service: &Yaml) -> Vec<(u16, u16)> {
    service["ports"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(scalar)
        .filter_map(|spec| {
            let spec = spec.trim_end_matches("/tcp");
            let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
            match parts[..] {
                [container, host, ..] => Some((host.parse().ok()?, container.parse().ok()?)),
                _ => None,
            }
        })
        .collect()
}

/// Whether `service` depends on `on`, and with which condition (`service_started` when none
/// is written).
fn dependency(service: &Yaml, on: &str) -> Option<String> {
    match &service["depends_on"] {
        Yaml::Array(list) => {
            list.iter().any(|d| d.as_str() == Some(on)).then(|| "service_started".into())
        }
        Yaml::Hash(map) => map
            .get(&Yaml::String(on.into()))
            .map(|d| d["condition"].as_str().unwrap_or("service_started").to_string()),
        _ => None,
    }
}

/// The host of a URL (`scheme://user:password@host:port/path`).
fn host_of(url: &str) -> Option<&str> {
    let authority = url.split_once("://")?.1.split('/').next()?;
    authority.rsplit('@').next()?.split(':').next().filter(|h| !h.is_empty())
}

/// The API's port on the host: the one the service listens on by default (config/base.toml),
/// as README gives it.
fn api_port() -> u16 {
    base_toml()["server"]["port"].as_integer().unwrap().try_into().unwrap()
}

/// What is wrong with the replicas: each must have its own name (the events it numbers in
/// PostgreSQL are kept under it), its own spool and outbox on a volume of its own (one process
/// per file, and what they hold was acknowledged), one database and one NATS shared by all
/// (behind a balancer without sticky sessions the event stream is right only when every
/// replica follows the same JetStream stream), and no port of its own on the host.
fn replica_problems(doc: &Yaml) -> Vec<String> {
    let mut problems = Vec::new();
    let replicas = triagents(doc);
    if replicas.len() < 2 {
        problems.push(format!("{} Triagent services; the stack runs two replicas", replicas.len()));
    }
    let services: BTreeSet<&str> =
        doc["services"].as_hash().unwrap().keys().filter_map(Yaml::as_str).collect();
    let mut names: BTreeMap<String, &str> = BTreeMap::new();
    let mut files: BTreeMap<(String, PathBuf), String> = BTreeMap::new();
    let mut shared: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for r in &replicas {
        let name = r.name;
        if !r.service["ports"].is_badvalue() {
            problems.push(format!("{name} publishes ports: clients come through the balancer"));
        }
        let replica = r.setting("server", "replica");
        if replica.is_empty() {
            problems.push(format!(
                "{name} has no server.replica: its default (host name:port) changes with the \
                 container"
            ));
        } else if let Some(other) = names.insert(replica.clone(), name) {
            problems.push(format!("{other} and {name} are both replica {replica}"));
        }
        for (what, section, key) in
            [("spool", "database", "spool_path"), ("outbox", "events", "outbox_path")]
        {
            let path = r.path(section, key);
            match r.kept_on(&path) {
                None => problems.push(format!(
                    "{name}'s {what} {} is on no writable volume: it would go with the container",
                    path.display()
                )),
                Some(place) => {
                    let this = format!("{name}'s {what}");
                    if let Some(other) = files.insert(place.clone(), this.clone()) {
                        problems.push(format!(
                            "{other} and {this} are one file, {} in volume {}",
                            place.1.display(),
                            place.0
                        ));
                    }
                }
            }
        }
        for (section, key, service) in
            [("database", "url", "postgres"), ("events", "nats_url", "nats")]
        {
            let url = r.setting(section, key);
            match host_of(&url) {
                Some(host) if services.contains(host) => {}
                _ => problems.push(format!(
                    "{name}'s {section}.{key} {url:?} names no service of the stack"
                )),
            }
            shared.entry(key).or_default().insert(url);
            if dependency(r.service, service).is_none() {
                problems.push(format!("{name} does not depend on {service}"));
            }
        }
        if dependency(r.service, "postgres").as_deref() != Some("service_healthy") {
            problems.push(format!("{name} does not wait for postgres to be healthy"));
        }
    }
    for (key, urls) in shared {
        if urls.len() > 1 {
            problems.push(format!("the replicas do not share one {key}: {urls:?}"));
        }
    }
    problems
}

/// An nginx configuration: a directive's words, or a block's words and what it holds.
#[derive(Debug)]
enum Nginx {
    Directive(Vec<String>),
    Block(Vec<String>, Vec<Nginx>),
}

/// Parses nginx configuration text (comments dropped; quoted strings kept with their quotes,
/// without spaces in them).
fn parse_nginx(text: &str) -> Vec<Nginx> {
    fn block(tokens: &mut std::vec::IntoIter<String>) -> Vec<Nginx> {
        let (mut out, mut words) = (Vec::new(), Vec::new());
        while let Some(t) = tokens.next() {
            match t.as_str() {
                ";" => out.push(Nginx::Directive(std::mem::take(&mut words))),
                "{" => out.push(Nginx::Block(std::mem::take(&mut words), block(tokens))),
                "}" => break,
                _ => words.push(t),
            }
        }
        out
    }
    let spaced: String = text
        .lines()
        .map(|l| l.split('#').next().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
        .replace(';', " ; ")
        .replace('{', " { ")
        .replace('}', " } ");
    let tokens: Vec<String> = spaced.split_whitespace().map(String::from).collect();
    block(&mut tokens.into_iter())
}

/// Every block of `nodes` with its enclosing blocks (outermost first), depth first.
fn blocks<'a>(
    nodes: &'a [Nginx],
    outer: &[&'a [Nginx]],
    out: &mut Vec<(&'a [String], Vec<&'a [Nginx]>)>,
) {
    for node in nodes {
        if let Nginx::Block(words, inner) = node {
            let mut path = outer.to_vec();
            path.push(nodes);
            path.push(inner);
            out.push((words, path.clone()));
            path.pop();
            blocks(inner, &path, out);
        }
    }
}

/// The directives named `name` in effect in a block, given the blocks around it (outermost
/// first): nginx takes them from the innermost block that has any (so one `proxy_set_header`
/// in a location drops every one of the server's).
fn in_effect<'a>(levels: &[&'a [Nginx]], name: &str) -> Vec<&'a [String]> {
    for level in levels.iter().rev() {
        let here: Vec<&[String]> = level
            .iter()
            .filter_map(|n| match n {
                Nginx::Directive(w) if w[0] == name => Some(&w[1..]),
                _ => None,
            })
            .collect();
        if !here.is_empty() {
            return here;
        }
    }
    Vec::new()
}

/// Every directive named `name`, in any block.
fn everywhere<'a>(nodes: &'a [Nginx], name: &str) -> Vec<&'a [String]> {
    nodes
        .iter()
        .flat_map(|n| match n {
            Nginx::Directive(w) if w[0] == name => vec![&w[1..]],
            Nginx::Block(_, inner) => everywhere(inner, name),
            Nginx::Directive(_) => Vec::new(),
        })
        .collect()
}

/// An nginx time (`60`, `60s`, `1m`, `500ms`, `1h`) in milliseconds.
fn nginx_ms(time: &str) -> Option<u64> {
    let digits = time.find(|c: char| !c.is_ascii_digit()).unwrap_or(time.len());
    let n: u64 = time[..digits].parse().ok()?;
    let unit = match &time[digits..] {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(n * unit)
}

/// What is wrong with the load balancer: it alone publishes the API's port, listens there,
/// names every replica (and nothing else) on the port the replica listens on, and passes the
/// event stream on unbuffered, over HTTP/1.1 kept alive, with a read timeout above the stream's
/// keep-alive comments and the service's own handler timeout. `config` reads the file the
/// balancer mounts (a path under docker/).
fn balancer_problems(doc: &Yaml, config: &dyn Fn(&Path) -> Option<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let replicas = triagents(doc);
    let port = api_port();
    let publishers: Vec<(&str, &Yaml, u16)> = doc["services"]
        .as_hash()
        .unwrap()
        .iter()
        .flat_map(|(name, s)| {
            published(s)
                .into_iter()
                .filter(|(host, _)| *host == port)
                .map(move |(_, container)| (name.as_str().unwrap(), s, container))
        })
        .collect();
    let [(lb, balancer, listen)] = publishers[..] else {
        problems.push(format!("not one service publishes port {port}: {publishers:?}"));
        return problems;
    };
    if replicas.iter().any(|r| r.name == lb) {
        problems.push(format!("{lb}, a replica, publishes {port}: the load balancer should"));
        return problems;
    }
    for r in &replicas {
        if dependency(balancer, r.name).is_none() {
            problems.push(format!("{lb} does not depend on {}", r.name));
        }
    }
    // The configuration: the files it mounts from the repository, read-only.
    let mut text = String::new();
    for spec in balancer["volumes"].as_vec().into_iter().flatten().filter_map(Yaml::as_str) {
        let parts: Vec<&str> = spec.split(':').collect();
        if !parts[0].starts_with('.') {
            continue;
        }
        if parts.get(2) != Some(&"ro") {
            problems.push(format!("{lb} mounts {spec} writable"));
        }
        match config(&docker().join(parts[0])) {
            Some(t) => text.push_str(&t),
            None => problems.push(format!("{lb} mounts {}, which does not exist", parts[0])),
        }
    }
    let conf = parse_nginx(&text);
    let mut all = Vec::new();
    blocks(&conf, &[], &mut all);
    let listens = everywhere(&conf, "listen");
    if !listens.iter().any(|w| w[0] == listen.to_string() || w[0].ends_with(&format!(":{listen}")))
    {
        problems.push(format!("{lb} publishes {port}:{listen} but listens on {listens:?}"));
    }
    // The upstream servers: exactly the replicas, each on its port.
    let upstreams: Vec<(&String, Vec<&[String]>)> = all
        .iter()
        .filter_map(|(words, levels)| match &words[..] {
            [upstream, name] if upstream == "upstream" => {
                Some((name, in_effect(&levels[levels.len() - 1..], "server")))
            }
            _ => None,
        })
        .collect();
    let servers: BTreeSet<String> =
        upstreams.iter().flat_map(|(_, servers)| servers.iter().map(|w| w[0].clone())).collect();
    let wanted: BTreeSet<String> =
        replicas.iter().map(|r| format!("{}:{}", r.name, r.setting("server", "port"))).collect();
    if servers != wanted {
        problems.push(format!("{lb} balances to {servers:?}, not the replicas {wanted:?}"));
    }
    // The location that serves GET /v1/events: `= /v1/events`, else the longest prefix.
    let events = all
        .iter()
        .filter(|(words, _)| words.first().map(String::as_str) == Some("location"))
        .filter_map(|(words, levels)| {
            let rank = match &words[1..] {
                [exact, path] if exact == "=" && path == "/v1/events" => usize::MAX,
                [path] if "/v1/events".starts_with(path.as_str()) => path.len(),
                [modifier, path] if modifier == "^~" && "/v1/events".starts_with(path.as_str()) => {
                    path.len()
                }
                _ => return None,
            };
            Some((rank, levels))
        })
        .max_by_key(|(rank, _)| *rank);
    let Some((_, levels)) = events else {
        problems.push(format!("{lb} has no location for /v1/events"));
        return problems;
    };
    let has = |name: &str, args: &[&str]| in_effect(levels, name).iter().any(|w| w == &args);
    let to_upstream =
        |w: &&[String]| upstreams.iter().any(|(name, _)| w[0] == format!("http://{name}"));
    if !in_effect(levels, "proxy_pass").iter().any(to_upstream) {
        problems.push("/v1/events is not passed on to the replicas' upstream".into());
    }
    for (name, args, why) in [
        ("proxy_buffering", &["off"][..], "the event stream must not be buffered"),
        ("proxy_http_version", &["1.1"], "HTTP/1.1 to the replicas"),
        ("proxy_set_header", &["Connection", "\"\""], "no `Connection: close` to the replicas"),
    ] {
        if !has(name, args) {
            problems.push(format!("/v1/events lacks `{name} {}`: {why}", args.join(" ")));
        }
    }
    let read_timeout = match in_effect(levels, "proxy_read_timeout").last() {
        Some(w) => nginx_ms(&w[0]).unwrap_or(0),
        None => 60_000, // nginx's default
    };
    for r in &replicas {
        for key in ["event_heartbeat_ms", "handler_timeout_ms"] {
            let ms = r.number("server", key);
            if read_timeout <= ms {
                problems.push(format!(
                    "proxy_read_timeout {read_timeout} ms is not above {}'s server.{key} {ms}",
                    r.name
                ));
            }
        }
    }
    problems
}

#[test]
fn compose_mounts_existing_paths_and_sets_only_real_settings() {
    let doc = compose();
    let services = doc["services"].as_hash().expect("services");
    let names: Vec<&str> = services.keys().filter_map(Yaml::as_str).collect();
    for needed in ["postgres", "nats", "otel-collector", "jaeger", "prometheus", "grafana"] {
        assert!(names.contains(&needed), "compose lacks {needed}: {names:?}");
    }
    for (name, service) in services {
        let name = name.as_str().unwrap();
        for volume in service["volumes"].as_vec().into_iter().flatten() {
            let spec = volume.as_str().expect("short volume syntax");
            let host = spec.split(':').next().unwrap();
            if host.starts_with('.') {
                let path = docker().join(host);
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
            let context = docker().join(build[&Yaml::String("context".into())].as_str().unwrap());
            let file = context.join(build[&Yaml::String("dockerfile".into())].as_str().unwrap());
            assert!(file.is_file(), "{name} builds {}, which does not exist", file.display());
        }
    }
    let base = base_toml();
    let replicas = triagents(&doc);
    assert!(!replicas.is_empty(), "no service is built from {IMAGES:?}");
    for r in &replicas {
        assert!(r.service["environment"].as_hash().is_some(), "{}: environment as a map", r.name);
        for var in r.env.keys() {
            assert!(
                OTHER_VARIABLES.contains(&var.as_str()) || is_setting(var, &base),
                "{} does not read {var}",
                r.name
            );
        }
    }
}

#[test]
fn merge_keys_resolve_as_compose_does() {
    let doc = parse_compose(concat!(
        "x-a: &a\n  env: &e\n    A: '1'\n    B: '2'\n  image: i\n",
        "services:\n  s:\n    <<: *a\n    env:\n      <<: *e\n      B: '3'\n",
    ));
    let s = &doc["services"]["s"];
    assert_eq!(s["image"].as_str(), Some("i"));
    assert_eq!(s["env"]["A"].as_str(), Some("1"));
    assert_eq!(s["env"]["B"].as_str(), Some("3"), "the mapping's own key wins");
    assert!(s["<<"].is_badvalue() && s["env"]["<<"].is_badvalue());
}

#[test]
fn each_replica_has_its_own_name_spool_and_outbox_and_shares_the_rest() {
    let problems = replica_problems(&compose());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_balancer_alone_publishes_the_api_and_reaches_every_replica() {
    let problems = balancer_problems(&compose(), &|p| std::fs::read_to_string(p).ok());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn prometheus_scrapes_every_replica() {
    let doc = compose();
    let prom =
        YamlLoader::load_from_str(&read(&repo().join("observability/prometheus/prometheus.yml")))
            .expect("prometheus.yml parses")
            .remove(0);
    let job = prom["scrape_configs"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|j| j["job_name"].as_str() == Some("triagent"))
        .expect("a triagent scrape job");
    let targets: BTreeSet<&str> = job["static_configs"]
        .as_vec()
        .unwrap()
        .iter()
        .flat_map(|c| c["targets"].as_vec().unwrap().iter().filter_map(Yaml::as_str))
        .collect();
    let wanted: BTreeSet<String> = triagents(&doc)
        .iter()
        .map(|r| format!("{}:{}", r.name, r.setting("server", "port")))
        .collect();
    assert_eq!(targets, wanted.iter().map(String::as_str).collect(), "one target per replica");
}

/// The compose file with `from` replaced by `to` (which must be there).
fn compose_with(from: &str, to: &str) -> Yaml {
    let text = compose_text();
    assert!(text.contains(from), "compose.yaml no longer has {from:?}: update this test");
    parse_compose(&text.replacen(from, to, 1))
}

/// The load balancer's problems with its configuration's `from` replaced by `to`.
fn balancer_with(from: &'static str, to: &'static str) -> Vec<String> {
    balancer_problems(&compose(), &move |p| {
        let text = std::fs::read_to_string(p).ok()?;
        assert!(text.contains(from), "{} no longer has {from:?}: update this test", p.display());
        Some(text.replacen(from, to, 1))
    })
}

fn mentions(problems: &[String], words: &str) -> bool {
    problems.iter().any(|p| p.contains(words))
}

#[test]
fn the_checks_catch_a_broken_stack() {
    let shared_name = replica_problems(&compose_with(
        "TRIAGENT__SERVER__REPLICA: triagent-b",
        "TRIAGENT__SERVER__REPLICA: triagent-a",
    ));
    assert!(mentions(&shared_name, "are both replica triagent-a"), "{shared_name:?}");
    let shared_volume = replica_problems(&compose_with(
        "- triagent-b-data:/app/data",
        "- triagent-a-data:/app/data",
    ));
    assert!(
        mentions(&shared_volume, "'s spool and triagent-b's spool are one file"),
        "{shared_volume:?}"
    );
    assert!(mentions(&shared_volume, "'s outbox and triagent-b's outbox are one file"));
    let no_volume = replica_problems(&compose_with(
        "- triagent-b-data:/app/data",
        "- triagent-b-data:/app/keys",
    ));
    assert!(mentions(&no_volume, "triagent-b's spool /app/data/spool"), "{no_volume:?}");
    let no_nats = replica_problems(&compose_with("NATS_URL: nats://nats:4222", "NATS_URL: \"\""));
    assert!(mentions(&no_nats, "events.nats_url \"\""), "{no_nats:?}");
    let moved = balancer_problems(&compose_with("\"8080:8080\"", "\"8081:8080\""), &|p| {
        std::fs::read_to_string(p).ok()
    });
    assert!(mentions(&moved, "not one service publishes port 8080"), "{moved:?}");

    let buffered = balancer_with("proxy_buffering off;", "proxy_buffering on;");
    assert!(mentions(&buffered, "proxy_buffering off"), "{buffered:?}");
    let wrong_port = balancer_with("server triagent-b:8080", "server triagent-b:9090");
    assert!(mentions(&wrong_port, "not the replicas"), "{wrong_port:?}");
    let short = balancer_with("proxy_read_timeout 60s;", "proxy_read_timeout 10s;");
    assert!(mentions(&short, "server.event_heartbeat_ms 15000"), "{short:?}");
    assert!(mentions(&short, "server.handler_timeout_ms 30000"), "{short:?}");
    let headers = balancer_with("proxy_cache off;", "proxy_set_header X-Stream yes;");
    assert!(
        mentions(&headers, "Connection \"\""),
        "a location's own header drops the server's: {headers:?}"
    );
    let elsewhere = balancer_with(
        "proxy_pass http://triagent;\n            proxy_buffering",
        "proxy_pass http://triagent-a:8080;\n            proxy_buffering",
    );
    assert!(mentions(&elsewhere, "not passed on to the replicas' upstream"), "{elsewhere:?}");
    let listen = balancer_with("listen 8080;", "listen 80;");
    assert!(mentions(&listen, "listens on"), "{listen:?}");
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

//! Webhook payloads as registries send them, for posting to dockhook.

use serde_json::{json, Value};

/// A Docker Hub push webhook for `namespace/name:tag`, in the shape Docker Hub
/// documents. Its `callback_url` points at a closed loopback port: tests
/// must never send traffic off this machine, whatever the product does.
pub fn dockerhub_payload(namespace: &str, name: &str, tag: &str) -> Value {
    let repo_name = format!("{namespace}/{name}");
    json!({
        "callback_url": format!("http://127.0.0.1:9/u/{repo_name}/hook/test/"),
        "push_data": {
            "pushed_at": 1_700_000_000,
            "pusher": namespace,
            "tag": tag,
        },
        "repository": {
            "comment_count": 0,
            "date_created": 1_600_000_000,
            "description": "",
            "full_description": "",
            "is_official": false,
            "is_private": false,
            "is_trusted": false,
            "name": name,
            "namespace": namespace,
            "owner": namespace,
            "repo_name": repo_name,
            "repo_url": format!("https://hub.docker.com/r/{repo_name}"),
            "star_count": 0,
            "status": "Active",
        },
    })
}

//! Prometheus metrics. (Being built: issue 10.)

/// Counts one attempt to deliver a notification to `service` (`slack`,
/// `smtp`, …) that ended `outcome` (`sent`, `failed`, `retrying`).
pub fn notification(service: &str, outcome: &str) {
    let _ = (service, outcome);
}

//! Clean-up after a successful cutover: the old container goes, the old
//! image goes when nothing uses or names it, and the containers that depended
//! on the old one (a shared network stack, legacy links) are recreated on
//! the new one. Failures here are reported, never fatal: the new container
//! already serves.

use bollard::models::ContainerInspectResponse;

use super::plan::plan;
use crate::engine::{Engine, EngineError, ImageRemoval};
use crate::targets::PARKED_MARKER;

use super::update::{short, Swap, Updater};

impl<E: Engine> Updater<E> {
    /// Removes the old container and, when nothing uses or names it any
    /// more, the old image; then updates the containers that depended on the
    /// old one. Failures here are reported, not fatal: the new container
    /// already serves.
    pub(super) async fn clean_up(&self, swap: &Swap) -> Vec<String> {
        let mut notes = Vec::new();
        let new_id = swap.new_id.clone().unwrap_or_default();
        let new_image = swap.new_image_id.clone();
        notes.extend(
            self.update_dependents(&swap.target, &swap.old_id, &new_id)
                .await,
        );
        match self.engine.remove_container(&swap.old_id).await {
            Ok(()) | Err(EngineError::NotFound(_)) => {}
            Err(e) => notes.push(format!("could not remove the old container: {e}")),
        }
        // The images the target ran before, newest first: the newest
        // `keep_images` stay for rollbacks, older ones go.
        let target = swap.target.clone();
        let mut previous = vec![swap.old_image_id.clone()];
        match self
            .store
            .call(move |store| store.previous_images(&target))
            .await
        {
            Ok(images) => previous.extend(images),
            Err(e) => notes.push(format!("could not read the images kept for rollbacks: {e}")),
        }
        let mut seen = std::collections::HashSet::new();
        previous.retain(|id| !id.is_empty() && id != &new_image && seen.insert(id.clone()));
        let keep = self.settings.keep_images as usize;
        for (age, image) in previous.iter().enumerate() {
            if age < keep {
                if age == 0 {
                    notes.push(format!(
                        "kept old image {} for rollbacks (keep_images = {keep})",
                        short(image)
                    ));
                }
                continue;
            }
            notes.extend(self.remove_image_if_unused(image, age == 0).await);
        }
        notes
    }

    /// Removes an image no container uses and no tag names; a note of what
    /// happened, if worth one (`loud`: even when it was already gone).
    async fn remove_image_if_unused(&self, image: &str, loud: bool) -> Option<String> {
        let old = short(image);
        let tags: Vec<String> = match self.engine.inspect_image(image).await {
            Ok(image) => image
                .repo_tags
                .unwrap_or_default()
                .into_iter()
                .filter(|t| t != "<none>:<none>")
                .collect(),
            Err(EngineError::NotFound(_)) => return None,
            Err(e) => vec![format!("(unknown: {e})")],
        };
        if !tags.is_empty() {
            return loud.then(|| format!("kept old image {old}: still tagged {}", tags.join(", ")));
        }
        Some(match self.engine.remove_image(image).await {
            Ok(ImageRemoval::Removed) => format!("removed old image {old}"),
            Ok(ImageRemoval::InUse) => format!("kept old image {old}: another container uses it"),
            Err(e) => format!("could not remove old image {old}: {e}"),
        })
    }

    /// Containers sharing the old container's network stack lose it with
    /// the old container, and legacy links point at the old container by
    /// ID: such dependents are recreated, on the same image, joined or
    /// linked to the new one.
    async fn update_dependents(&self, target: &str, old_id: &str, new_id: &str) -> Vec<String> {
        let mut notes = Vec::new();
        let running = match self.engine.list_running().await {
            Ok(running) => running,
            Err(e) => return vec![format!("could not look for dependent containers: {e}")],
        };
        // Docker renames links with their container: the old one may be
        // parked by now.
        let parked = format!("{target}{PARKED_MARKER}old-");
        let is_old = |name: &str| name == target || name.starts_with(&parked);
        for container in running.iter().filter(|c| c.id != new_id && c.id != old_id) {
            let Ok(inspect) = self.engine.inspect_container(&container.id).await else {
                continue;
            };
            let host = inspect.host_config.clone().unwrap_or_default();
            let mode = host.network_mode.as_deref().unwrap_or_default();
            let shares_stack = mode.strip_prefix("container:").is_some_and(|joined| {
                is_old(joined) || (!joined.is_empty() && old_id.starts_with(joined))
            });
            let linked = host.links.iter().flatten().any(|link| {
                is_old(
                    link.trim_start_matches('/')
                        .split(':')
                        .next()
                        .unwrap_or_default(),
                )
            });
            if !shares_stack && !linked {
                continue;
            }
            let result = self
                .recreate_dependent(&inspect, new_id, |host| {
                    if shares_stack {
                        host.network_mode = Some(format!("container:{new_id}"));
                    }
                    for link in host.links.iter_mut().flatten() {
                        if let Some((other, alias)) = link.split_once(':') {
                            if is_old(other) {
                                *link = format!("{target}:{alias}");
                            }
                        }
                    }
                })
                .await;
            let name = &container.name;
            notes.push(match result {
                Ok(()) => format!("recreated dependent container {name}"),
                Err(e) => format!("could not recreate dependent container {name}: {e}"),
            });
        }
        notes
    }

    /// Recreates `dependent` on the same image, with `adjust` applied to its
    /// host configuration.
    async fn recreate_dependent(
        &self,
        dependent: &ContainerInspectResponse,
        new_id: &str,
        adjust: impl FnOnce(&mut bollard::models::HostConfig),
    ) -> Result<(), EngineError> {
        let id = dependent.id.clone().unwrap_or_default();
        let name = dependent.name.clone().unwrap_or_default();
        let name = name.trim_start_matches('/');
        let image = dependent
            .config
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let image_config = match self
            .engine
            .inspect_image(dependent.image.as_deref().unwrap_or_default())
            .await
        {
            Ok(i) => i.config,
            Err(_) => None,
        };
        let mut create = plan(dependent, image_config.as_ref(), &image);
        // The dependent is not being updated: it keeps its image. It is
        // created from its reference, so later pushes still match it, as
        // long as the reference still names that image; if the tag moved
        // since, only the image ID keeps it on what it ran.
        let running = dependent.image.clone().unwrap_or_default();
        let resolves = self
            .engine
            .inspect_image(&image)
            .await
            .is_ok_and(|i| i.id.as_deref() == Some(running.as_str()));
        if !resolves {
            tracing::warn!(dependent = %name, %image, "the tag moved since the dependent was created; recreating it on its image ID");
            create.body.image = Some(running);
        }
        if let Some(host) = create.body.host_config.as_mut() {
            adjust(host);
        }
        let temporary = format!("{name}{PARKED_MARKER}dep-{}", short(new_id));
        let replacement = self
            .engine
            .create_container(&temporary, create.body)
            .await?;
        self.engine.stop_container(&id, None).await?;
        self.engine.remove_container(&id).await?;
        self.engine.rename_container(&replacement, name).await?;
        self.engine.start_container(&replacement).await
    }
}

//! The person's OpenAI Admin key, with which the assistant's OpenAI key rotates in one click
//! (a new project service account, the old one deleted: see
//! [`crate::rotation::provider_key::Mint::OpenAiAdmin`]). The admin key is kept in the
//! keychain only (`provider-management/openai`), never given to the assistant; the project
//! it works in is a setting.

use super::{problem, Clawkeeper};
use crate::audit;
use crate::local::LOCAL_ID;
use crate::openai::admin::{OpenAiAdmin, RetryPolicy, DEFAULT_BASE_URL};
use crate::problem::{Problem, UserFacing};
use crate::rotation::provider_key::remembered_service_account;
use crate::secret::Secret;
use crate::store::ProviderKind;
use crate::vault::{SecretKind, SecretRef};
use serde::Serialize;

/// The setting naming the OpenAI project the assistant's key belongs to (`proj_…`).
pub const OPENAI_PROJECT: &str = "openai.project_id";

/// The admin key's place in the keychain.
fn admin_ref() -> SecretRef {
    SecretRef::new(SecretKind::ProviderManagement, "openai")
}

/// OpenAI's Admin API: `CLAWKEEPER_OPENAI_API` (tests: the contract fake), else the real one.
pub(super) fn openai_admin_api() -> Result<OpenAiAdmin, Problem> {
    let base =
        std::env::var("CLAWKEEPER_OPENAI_API").unwrap_or_else(|_| DEFAULT_BASE_URL.to_owned());
    OpenAiAdmin::with_base_url(&base, RetryPolicy::default()).map_err(|e| e.problem())
}

/// Whether a provider at `base_url` is OpenAI itself (`api.openai.com`), whose Admin key
/// makes keys. `CLAWKEEPER_OPENAI_MODEL_API` names one more address that counts (tests: the
/// contract fake model standing in for `https://api.openai.com/v1`, as
/// `CLAWKEEPER_OPENAI_API` stands in for the Admin API).
pub(super) fn is_openai_itself(base_url: &str) -> bool {
    is_openai_with(
        base_url,
        std::env::var("CLAWKEEPER_OPENAI_MODEL_API").ok().as_deref(),
    )
}

fn is_openai_with(base_url: &str, stand_in: Option<&str>) -> bool {
    let Ok(url) = reqwest::Url::parse(base_url) else {
        return false;
    };
    let origin = |u: &reqwest::Url| {
        (
            u.scheme().to_owned(),
            u.host_str().map(str::to_ascii_lowercase),
            u.port_or_known_default(),
        )
    };
    url.host_str()
        .is_some_and(|h| h.eq_ignore_ascii_case("api.openai.com"))
        || stand_in
            .filter(|s| !s.is_empty())
            .and_then(|s| reqwest::Url::parse(s).ok())
            .is_some_and(|s| origin(&s) == origin(&url))
}

/// What was saved (no secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenAiAdminView {
    pub project_id: String,
    /// Service accounts in the project now.
    pub service_accounts: usize,
}

impl Clawkeeper {
    /// The Admin API, the admin key and the project, when the assistant's provider is
    /// OpenAI(-compatible) and the person gave an admin key.
    pub(super) async fn openai_admin(&self) -> Option<(OpenAiAdmin, Secret, String)> {
        let rec = self.inner.store.provider(LOCAL_ID).await.ok().flatten()?;
        if rec.kind != ProviderKind::OpenaiCompatible {
            return None;
        }
        let project = self
            .inner
            .store
            .setting(OPENAI_PROJECT)
            .await
            .ok()
            .flatten()?;
        let key = self.inner.vault.read(&admin_ref()).await.ok()?;
        let api = openai_admin_api().ok()?;
        Some((api, key, project))
    }

    /// Whether the assistant's key in use is a service account Clawkeeper made (so a
    /// rotation deletes it by itself) — not, when the person made it.
    pub(super) async fn openai_key_is_ours(&self, project: &str) -> bool {
        match self
            .inner
            .vault
            .read(&self.inner.instance.provider_key_ref())
            .await
        {
            Ok(key) => remembered_service_account(&self.inner.store, project, &key)
                .await
                .is_some(),
            Err(_) => false,
        }
    }

    /// Save an OpenAI Admin key for `project` (`proj_…`; none: the organization's only
    /// project). Checked first: OpenAI must let it list the project's service accounts; a
    /// key OpenAI refuses changes nothing.
    pub async fn openai_admin_save(
        &self,
        key: Secret,
        project: Option<String>,
    ) -> Result<OpenAiAdminView, Problem> {
        let key = Secret::new(key.expose().trim());
        if key.is_empty() {
            return Err(Problem::new(
                "openai_admin_key_empty",
                "The admin key is empty.",
                Some("Paste the Admin key from platform.openai.com/settings/organization/admin-keys."),
            ));
        }
        let rec = self.inner.store.provider(LOCAL_ID).await.ok().flatten();
        if rec.map(|r| r.kind) != Some(ProviderKind::OpenaiCompatible) {
            return Err(Problem::new(
                "openai_admin_not_openai",
                "Your assistant doesn't use OpenAI, so an OpenAI admin key has nothing to do.",
                Some("Set up your OpenAI key first (your own provider, address https://api.openai.com/v1), then add the admin key."),
            ));
        }
        let api = openai_admin_api()?;
        let project = match project
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
        {
            Some(p) => p,
            None => {
                let projects = api.projects(&key).await.map_err(|e| e.problem())?;
                match projects.as_slice() {
                    [one] => one.id.clone(),
                    [] => {
                        return Err(Problem::new(
                            "openai_project_needed",
                            "Your OpenAI organization has no active project.",
                            Some("Make one at platform.openai.com/settings/organization/projects, then try again."),
                        ))
                    }
                    many => {
                        let list = many
                            .iter()
                            .take(10)
                            .map(|p| format!("{} ({})", p.id, p.name))
                            .collect::<Vec<_>>()
                            .join(", ");
                        return Err(Problem::new(
                            "openai_project_needed",
                            format!("Your OpenAI organization has {} projects: {list}. Which one is your assistant's key in?", many.len()),
                            Some("Give the project id (proj_…) with the admin key."),
                        ));
                    }
                }
            }
        };
        let accounts = api
            .service_accounts(&key, &project)
            .await
            .map_err(|e| e.problem())?;
        self.inner
            .vault
            .store(&admin_ref(), &key)
            .await
            .map_err(|e| problem(&e))?;
        drop(key);
        self.inner
            .store
            .set_setting(OPENAI_PROJECT, &project)
            .await
            .map_err(|e| problem(&e))?;
        let _ = audit::append(
            &self.inner.store,
            None,
            "provider.admin_key_saved",
            &format!("OpenAI, project {project}"),
        )
        .await;
        Ok(OpenAiAdminView {
            project_id: project,
            service_accounts: accounts.len(),
        })
    }

    /// Forget the OpenAI admin key (the provider key then rotates as a guided one).
    pub async fn openai_admin_forget(&self) -> Result<(), Problem> {
        self.inner
            .vault
            .delete(&admin_ref())
            .await
            .map_err(|e| problem(&e))?;
        let store = &self.inner.store;
        let _ = store.delete_setting(OPENAI_PROJECT).await;
        let _ = audit::append(store, None, "provider.admin_key_forgotten", "OpenAI").await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::is_openai_with;

    #[test]
    fn openai_itself_is_its_api_host_or_the_named_stand_in() {
        assert!(is_openai_with("https://api.openai.com/v1", None));
        assert!(is_openai_with("https://API.OpenAI.com/v1/", Some("")));
        assert!(!is_openai_with("https://openrouter.ai/api/v1", None));
        assert!(!is_openai_with("https://api.openai.com.example/v1", None));
        assert!(!is_openai_with("not a url", None));
        let fake = Some("http://127.0.0.1:4100/v1");
        assert!(is_openai_with("http://127.0.0.1:4100/v1", fake));
        assert!(
            !is_openai_with("http://127.0.0.1:4101/v1", fake),
            "another port"
        );
        assert!(
            !is_openai_with("https://127.0.0.1:4100/v1", fake),
            "another scheme"
        );
        assert!(is_openai_with("https://api.openai.com/v1", fake));
    }
}

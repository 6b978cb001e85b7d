const COMMANDS: &[&str] = &[
    "get_overview",
    "install_runtime",
    "cancel_install",
    "start_instance",
    "stop_instance",
    "save_provider",
    "start_openrouter_sign_in",
    "chat_send",
    "chat_history",
    "chat_abort",
    "servers",
    "server_scan",
    "server_connect",
    "server_provision",
    "cancel_server_job",
    "server_posture",
    "server_delete",
    "support_issue",
    "support_list",
    "support_revoke",
    "cloud_token_save",
    "cloud_options",
    "cloud_deploy",
    "assistant_use",
    "tailnet_view",
    "tailnet_check",
    "tailnet_key_save",
    "tailnet_key_forget",
    "server_tailnet_join",
    "tailnet_use_embedded",
    "usage_view",
    "usage_sync",
    "usage_export",
    "spend_cap_set",
    "spend_resume",
    "provider_management_save",
    "provider_management_forget",
    "status_detail",
    "keys_inventory",
    "key_reminders",
    "set_key_reminders",
    "rotate_key",
    "rotate_key_with",
    "rotate_key_sign_in",
    "rotate_key_sign_in_cancel",
    "openai_admin_save",
    "rotate_all",
    "rotations_resume",
    "open_window",
];

fn main() {
    // An app manifest turns each command into a permission (`allow-<command>`), so each
    // window's capability file grants only the commands that window uses.
    let attrs = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(e) = tauri_build::try_build(attrs) {
        println!("cargo:warning=tauri-build failed: {e:#}");
        std::process::exit(1);
    }
}

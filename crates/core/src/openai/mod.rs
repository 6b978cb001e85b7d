//! OpenAI, where the person's model provider is OpenAI and they gave Clawkeeper an Admin
//! key: [`admin`] is a client of the Admin API's projects and project service accounts,
//! with which the assistant's key is rotated in one click (a new service account with its
//! own key, then the old service account deleted).

pub mod admin;

pub use admin::{
    CreatedServiceAccount, Error as AdminError, OpenAiAdmin, Page, Project, ServiceAccount,
};

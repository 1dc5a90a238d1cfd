//! GraphQL object types: thin wrappers around `db` rows whose resolvers add
//! the relations, each loaded through a shared DataLoader.

mod note;
mod tag;
mod user;

pub(crate) use note::{Note, SearchHit, Visibility};
pub(crate) use tag::Tag;
pub(crate) use user::User;

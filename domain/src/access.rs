//! Who may do what in a workspace: the roles of its members, the scopes of its API keys, and the
//! one table that maps them to permissions. Every route asks this table; nothing else decides.

crate::named_enum! {
    /// A member's role in one workspace.
    pub enum Role {
        /// Manages members and billing, and everything an admin may do.
        Owner => "owner",
        /// Manages connections, syncs and API keys.
        Admin => "admin",
        /// Reads insights and exports them.
        Analyst => "analyst",
        /// Reads the event history and the audit views; changes nothing.
        Auditor => "auditor",
    }
}

impl Role {
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Owner => true,
            Role::Admin => !matches!(permission, ManageMembers | ReadHistory),
            Role::Analyst => matches!(permission, ReadWorkspace | ReadInsights),
            Role::Auditor => matches!(permission, ReadWorkspace | ReadHistory),
        }
    }
}

crate::named_enum! {
    /// What an API key may do, chosen when it is created.
    pub enum ApiKeyScope {
        /// Reads the workspace, its connections, campaigns, syncs and insights.
        ReadOnly => "read_only",
        /// Also connects platforms and starts syncs.
        ReadWrite => "read_write",
    }
}

impl ApiKeyScope {
    /// Keys never manage people, keys or billing, and never read the audit history: those stay
    /// with signed-in members.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            ApiKeyScope::ReadOnly => matches!(permission, ReadWorkspace | ReadInsights),
            ApiKeyScope::ReadWrite => {
                matches!(permission, ReadWorkspace | ReadInsights | ManageConnections)
            }
        }
    }
}

/// Declares the permissions once: the `Permission` enum, and a zero-sized type per permission
/// (in [`permits`]) for routes that state what they need in their signature.
macro_rules! permissions {
    ($($(#[$doc:meta])* $name:ident,)+) => {
        /// One kind of action on a workspace. Routes name the permission they need.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Permission {
            $($(#[$doc])* $name,)+
        }

        /// The permissions as types: `InWorkspace<permits::ReadInsights>` in a handler's
        /// signature says what the route needs.
        pub mod permits {
            /// A zero-sized type that stands for one [`Permission`](super::Permission).
            pub trait Permit {
                const PERMISSION: super::Permission;
            }

            $(
                $(#[$doc])*
                pub struct $name;

                impl Permit for $name {
                    const PERMISSION: super::Permission = super::Permission::$name;
                }
            )+
        }
    };
}

permissions! {
    /// The workspace, its connections, ad accounts, campaigns, sync runs and members.
    ReadWorkspace,
    /// Insights and their exports.
    ReadInsights,
    /// The event history, the audit view.
    ReadHistory,
    /// Connect platforms, start syncs, disconnect.
    ManageConnections,
    /// Create and revoke API keys.
    ManageApiKeys,
    /// Invite, change roles, remove and erase members; billing.
    ManageMembers,
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    #[test]
    fn the_role_table_reads_like_the_product_says() {
        let table = [
            // permission        owner  admin  analyst auditor
            (ReadWorkspace, [true, true, true, true]),
            (ReadInsights, [true, true, true, false]),
            (ReadHistory, [true, false, false, true]),
            (ManageConnections, [true, true, false, false]),
            (ManageApiKeys, [true, true, false, false]),
            (ManageMembers, [true, false, false, false]),
        ];
        for (permission, expected) in table {
            for (role, allowed) in Role::ALL.into_iter().zip(expected) {
                assert_eq!(role.allows(permission), allowed, "{role} {permission:?}");
            }
        }
    }

    #[test]
    fn keys_only_read_or_run_syncs() {
        assert!(ApiKeyScope::ReadOnly.allows(ReadInsights));
        assert!(!ApiKeyScope::ReadOnly.allows(ManageConnections));
        assert!(ApiKeyScope::ReadWrite.allows(ManageConnections));
        for scope in [ApiKeyScope::ReadOnly, ApiKeyScope::ReadWrite] {
            assert!(!scope.allows(ManageMembers) && !scope.allows(ManageApiKeys));
            assert!(!scope.allows(ReadHistory));
        }
        assert_eq!(Role::parse("auditor"), Some(Role::Auditor));
        assert_eq!(
            ApiKeyScope::parse("read_write"),
            Some(ApiKeyScope::ReadWrite)
        );
        assert_eq!(Role::parse("root"), None);
    }
}

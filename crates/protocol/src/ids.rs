//! The ids that cross every boundary: in JSON and SQL plain numbers, in Rust
//! their own types.

/// A user's id. Ids are SQLite rowids (or PostgreSQL bigserials): positive
/// and stable. Users and rooms have separate id types so a signature that
/// takes both cannot have them swapped. In JSON, a plain number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

/// A room's id (see [`UserId`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct RoomId(pub i64);

/// A message's place in its room, assigned by the store in the transaction
/// that stores it: 1 for the first message, then strictly increasing with no
/// gaps. `Seq(0)` means "nothing yet" (an empty room, a reader who has read
/// nothing). Clients resume from the last one they saw. In JSON, a number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    /// Before the first message.
    pub const ZERO: Seq = Seq(0);

    /// The message after this one.
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }

    /// Messages after `self` up to and including `upto` (0 when `upto` is not later).
    pub fn until(self, upto: Seq) -> u64 {
        upto.0.saturating_sub(self.0)
    }
}

impl std::fmt::Display for Seq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for RoomId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for RoomId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<RoomId, Self::Err> {
        s.parse().map(RoomId)
    }
}

impl std::str::FromStr for UserId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<UserId, Self::Err> {
        s.parse().map(UserId)
    }
}

/// With the `rusqlite` feature (the server's SQLite store), ids and
/// sequence numbers bind and read as SQLite integers.
#[cfg(feature = "rusqlite")]
mod sqlite {
    use rusqlite::types::{FromSql, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

    use super::{RoomId, Seq, UserId};

    /// Ids are stored as SQLite integers.
    macro_rules! sql_id {
        ($($id:ident),*) => {$(
            impl ToSql for $id {
                fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                    self.0.to_sql()
                }
            }

            impl FromSql for $id {
                fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                    i64::column_result(value).map($id)
                }
            }
        )*};
    }

    sql_id!(UserId, RoomId);

    /// Sequence numbers are SQLite integers: beyond `i64::MAX` a client's mark
    /// is clamped (no room gets there), and a negative stored value reads as 0.
    impl ToSql for Seq {
        fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
            Ok(ToSqlOutput::from(self.0.min(i64::MAX as u64) as i64))
        }
    }

    impl FromSql for Seq {
        fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
            i64::column_result(value).map(|v| Seq(v.max(0) as u64))
        }
    }
}

//! [`PgParam`]: a query parameter that says its PostgreSQL type, so a query can run on the
//! unnamed statement in one round trip without asking the server for parameter types.

use tokio_postgres::types::{ToSql, Type};

/// A query parameter of [`PgConnection`](super::PgConnection)'s and
/// [`PgTransaction`](super::PgTransaction)'s query methods: a [`ToSql`] value that also
/// says which PostgreSQL type it is sent as. The server takes the parameter as that type
/// (and casts or coerces it as the SQL asks: `$1::int8`, an `int4` into an `int8` column),
/// so no statement has to be prepared to learn the types first.
///
/// Implemented for `bool` (`bool`), `i8` (`"char"`), `i16` (`int2`), `i32` (`int4`), `i64`
/// (`int8`), `f32` (`float4`), `f64` (`float8`), `&str` and `String` (`text`), `&[u8]` and
/// `Vec<u8>` (`bytea`), and `Option<T>` (the type of `T`; `None` is NULL).
///
/// For another type, name the PostgreSQL type its [`ToSql`] implementation writes (it
/// must [`accept`](ToSql::accepts) it; the value is checked when the query is sent):
///
/// ```
/// use poolwarden::backends::postgres::PgParam;
/// use tokio_postgres::types::{ToSql, Type};
///
/// /// A newtype sent as `text`.
/// #[derive(Debug)]
/// struct Email(String);
///
/// impl ToSql for Email {
///     fn to_sql(
///         &self,
///         ty: &Type,
///         out: &mut tokio_postgres::types::private::BytesMut,
///     ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
///         self.0.to_sql(ty, out)
///     }
///     tokio_postgres::types::accepts!(TEXT, VARCHAR);
///     tokio_postgres::types::to_sql_checked!();
/// }
///
/// impl PgParam for Email {
///     fn pg_type() -> Type {
///         Type::TEXT
///     }
/// }
/// ```
///
/// A type from another crate (`uuid::Uuid`, `chrono::DateTime`, `serde_json::Value`, …)
/// cannot implement this trait outside this crate: wrap it in a newtype as above, or pass
/// it through [`query_typed`](tokio_postgres::Client::query_typed), which takes
/// `(&(dyn ToSql + Sync), Type)` pairs and is equally free of named statements.
pub trait PgParam: ToSql + Sync + ErasedPgParam {
    /// The PostgreSQL type this value is sent as.
    fn pg_type() -> Type
    where
        Self: Sized;
}

/// How a `&dyn PgParam` gives its type and its [`ToSql`] side. Implemented for every
/// [`PgParam`]; never implement it yourself.
pub trait ErasedPgParam {
    /// [`PgParam::pg_type`] of the value's type.
    fn param_type(&self) -> Type;
    /// The value as tokio-postgres takes it.
    fn as_to_sql(&self) -> &(dyn ToSql + Sync);
}

impl<T: PgParam> ErasedPgParam for T {
    fn param_type(&self) -> Type {
        T::pg_type()
    }
    fn as_to_sql(&self) -> &(dyn ToSql + Sync) {
        self
    }
}

macro_rules! pg_param {
    ($($t:ty => $ty:ident),* $(,)?) => {
        $(
            impl PgParam for $t {
                fn pg_type() -> Type {
                    Type::$ty
                }
            }
        )*
    };
}

pg_param! {
    bool => BOOL,
    i8 => CHAR,
    i16 => INT2,
    i32 => INT4,
    i64 => INT8,
    f32 => FLOAT4,
    f64 => FLOAT8,
    String => TEXT,
    Vec<u8> => BYTEA,
}

impl PgParam for &str {
    fn pg_type() -> Type {
        Type::TEXT
    }
}

impl PgParam for &[u8] {
    fn pg_type() -> Type {
        Type::BYTEA
    }
}

impl<T: PgParam> PgParam for Option<T> {
    fn pg_type() -> Type {
        T::pg_type()
    }
}

/// `params` as tokio-postgres's typed parameters.
pub(super) fn typed<'a>(params: &'a [&'a dyn PgParam]) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    params
        .iter()
        .map(|p| (p.as_to_sql(), p.param_type()))
        .collect()
}

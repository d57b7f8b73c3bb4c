//! Configuration: the registry values under the service key's `Parameters` subkey, parsed and
//! validated here. The kernel adapter only reads raw values and feeds them in by name.
//!
//! | Value | Type | Default | Valid |
//! |---|---|---|---|
//! | `ListenAddresses` | `REG_MULTI_SZ` | `127.0.0.1:40007`, `[::1]:40007` (loopback only) | 1..=[`MAX_ENDPOINTS`] distinct `ADDR:PORT`, port 1..=65535 |
//! | `MaxConnections` | `REG_DWORD` | [`DEFAULT_MAX_CONNECTIONS`] | 1..=[`MAX_CONNECTIONS_LIMIT`] |
//! | `MaxConnectionsPerAddress` | `REG_DWORD` | [`DEFAULT_MAX_CONNECTIONS_PER_ADDRESS`] | 0 (no limit) or 1..=[`MAX_CONNECTIONS_LIMIT`] |
//! | `BufferSize` | `REG_DWORD` | [`DEFAULT_BUFFER_SIZE`] | [`MIN_BUFFER_SIZE`]..=[`MAX_BUFFER_SIZE`] |
//! | `IdleTimeout` | `REG_DWORD` (seconds) | [`DEFAULT_IDLE_TIMEOUT`] | 0 (off) or 1..=[`MAX_IDLE_TIMEOUT`] |
//! | `NoDelay` | `REG_DWORD` | [`DEFAULT_NO_DELAY`] | 0 (Nagle's algorithm on) or 1 (`TCP_NODELAY`) |
//!
//! A missing value takes its default; a present but invalid one is an error naming the value
//! and the reason ([`ConfigError`]), never silently replaced. Addresses are parsed with
//! `core::net::SocketAddr` (IPv6 in brackets). Nothing here allocates: the endpoint list has a
//! fixed capacity, and UTF-16 entries are decoded into a small stack buffer.
//!
//! Port 0 (an ephemeral port) is refused unless [`ConfigBuilder::allow_ephemeral_ports`] was
//! called; only the host harness does that, never the registry path.

use ::core::{fmt, net::SocketAddr};

/// Most endpoints `ListenAddresses` may list.
pub const MAX_ENDPOINTS: usize = 16;
/// Default of `MaxConnections`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;
/// Largest `MaxConnections`: the slot array (24 bytes a slot) stays at most 1.5 MiB.
pub const MAX_CONNECTIONS_LIMIT: u32 = 65_536;
/// Default of `MaxConnectionsPerAddress`.
///
/// One remote address may hold this many connections at once, so the default
/// `MaxConnections` takes at least 16 addresses to fill; a local tool that opens more loopback
/// connections than this sets it higher, or to 0 (no limit).
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: u32 = 64;
/// Default of `BufferSize`.
pub const DEFAULT_BUFFER_SIZE: u32 = 16_384;
/// Smallest `BufferSize`.
pub const MIN_BUFFER_SIZE: u32 = 512;
/// Largest `BufferSize` (1 MiB of non-paged pool per connection).
pub const MAX_BUFFER_SIZE: u32 = 1 << 20;
/// Default of `IdleTimeout`, in seconds.
///
/// A connection that makes no progress in either direction for this long is closed
/// abortively: `MaxConnections` silent peers then hold every slot for two minutes at most,
/// while an interactive peer that pauses for less keeps its connection.
pub const DEFAULT_IDLE_TIMEOUT: u32 = 120;
/// Largest `IdleTimeout`: one day.
pub const MAX_IDLE_TIMEOUT: u32 = 86_400;
/// Default of `NoDelay`: on.
///
/// An echo server writes back what it read at once, so Nagle's algorithm has nothing to
/// coalesce; with it on, a request/response peer waits for the peer's delayed ACK on every
/// message that leaves a partial segment unacknowledged (40 ms on Linux, 200 ms by default on
/// Windows: docs/performance.md).
pub const DEFAULT_NO_DELAY: u32 = 1;
/// The default `ListenAddresses`: loopback only. Serving other machines is an explicit
/// choice (`0.0.0.0:40007`, `[::]:40007`, or one interface's address; docs/installing.md).
pub const DEFAULT_LISTEN_ADDRESSES: [&str; 2] = ["127.0.0.1:40007", "[::1]:40007"];

/// `REG_SZ`.
pub const REG_SZ: u32 = 1;
/// `REG_DWORD`.
pub const REG_DWORD: u32 = 4;
/// `REG_MULTI_SZ`.
pub const REG_MULTI_SZ: u32 = 7;

/// Longest accepted `ADDR:PORT` text (a bracketed IPv6 address with scope id and port fits).
const MAX_ENTRY_LEN: usize = 64;

/// The registry values the driver reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueName {
    /// `ListenAddresses` (`REG_MULTI_SZ`).
    ListenAddresses,
    /// `MaxConnections` (`REG_DWORD`).
    MaxConnections,
    /// `BufferSize` (`REG_DWORD`).
    BufferSize,
    /// `MaxConnectionsPerAddress` (`REG_DWORD`).
    MaxConnectionsPerAddress,
    /// `IdleTimeout` (`REG_DWORD`, seconds).
    IdleTimeout,
    /// `NoDelay` (`REG_DWORD`, 0 or 1).
    NoDelay,
}

/// Encodes an ASCII name as UTF-16 at compile time.
const fn utf16<const N: usize>(ascii: &[u8; N]) -> [u16; N] {
    let mut out = [0_u16; N];
    let mut i = 0;
    while i < N {
        out[i] = ascii[i] as u16;
        i += 1;
    }
    out
}

const LISTEN_ADDRESSES_UTF16: [u16; 15] = utf16(b"ListenAddresses");
const MAX_CONNECTIONS_UTF16: [u16; 14] = utf16(b"MaxConnections");
const BUFFER_SIZE_UTF16: [u16; 10] = utf16(b"BufferSize");
const MAX_CONNECTIONS_PER_ADDRESS_UTF16: [u16; 24] = utf16(b"MaxConnectionsPerAddress");
const IDLE_TIMEOUT_UTF16: [u16; 11] = utf16(b"IdleTimeout");
const NO_DELAY_UTF16: [u16; 7] = utf16(b"NoDelay");

impl ValueName {
    /// Every value, in the order the adapter should read them.
    pub const ALL: [Self; 6] = [
        Self::ListenAddresses,
        Self::MaxConnections,
        Self::BufferSize,
        Self::MaxConnectionsPerAddress,
        Self::IdleTimeout,
        Self::NoDelay,
    ];

    /// The value's name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ListenAddresses => "ListenAddresses",
            Self::MaxConnections => "MaxConnections",
            Self::BufferSize => "BufferSize",
            Self::MaxConnectionsPerAddress => "MaxConnectionsPerAddress",
            Self::IdleTimeout => "IdleTimeout",
            Self::NoDelay => "NoDelay",
        }
    }

    /// The value's name in UTF-16, without terminator (for a `UNICODE_STRING`).
    #[must_use]
    pub const fn as_utf16(self) -> &'static [u16] {
        match self {
            Self::ListenAddresses => &LISTEN_ADDRESSES_UTF16,
            Self::MaxConnections => &MAX_CONNECTIONS_UTF16,
            Self::BufferSize => &BUFFER_SIZE_UTF16,
            Self::MaxConnectionsPerAddress => &MAX_CONNECTIONS_PER_ADDRESS_UTF16,
            Self::IdleTimeout => &IDLE_TIMEOUT_UTF16,
            Self::NoDelay => &NO_DELAY_UTF16,
        }
    }

    /// The registry type the value must have.
    #[must_use]
    pub const fn expected_type(self) -> u32 {
        match self {
            Self::ListenAddresses => REG_MULTI_SZ,
            Self::MaxConnections
            | Self::BufferSize
            | Self::MaxConnectionsPerAddress
            | Self::IdleTimeout
            | Self::NoDelay => REG_DWORD,
        }
    }
}

impl fmt::Display for ValueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text of an offending `ListenAddresses` entry, kept without allocating (truncated).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EntryText {
    bytes: [u8; MAX_ENTRY_LEN],
    len: usize,
    truncated: bool,
}

impl EntryText {
    fn new(text: &str) -> Self {
        let mut bytes = [0; MAX_ENTRY_LEN];
        let mut len = 0;
        for (i, c) in text.char_indices() {
            let end = i.saturating_add(c.len_utf8());
            if end > MAX_ENTRY_LEN {
                break;
            }
            len = end;
        }
        // Both slices in one pattern: their lengths are provably equal, so `copy_from_slice`
        // keeps no length-mismatch panic in the image.
        if let (Some(dst), Some(src)) = (bytes.get_mut(..len), text.as_bytes().get(..len)) {
            dst.copy_from_slice(src);
        }
        Self {
            bytes,
            len,
            truncated: len < text.len(),
        }
    }

    /// The entry (possibly truncated).
    #[must_use]
    pub fn as_str(&self) -> &str {
        let bytes = self.bytes.get(..self.len).unwrap_or_default();
        ::core::str::from_utf8(bytes).unwrap_or("?")
    }
}

impl fmt::Debug for EntryText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for EntryText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\"{}{}\"",
            self.as_str(),
            if self.truncated { "..." } else { "" }
        )
    }
}

/// Why a value is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The value has the wrong registry type.
    WrongType {
        /// The type found.
        found: u32,
        /// The type required.
        expected: u32,
    },
    /// The data has the wrong length for its type.
    BadLength(usize),
    /// A number is 0.
    Zero,
    /// A number is below the minimum.
    TooSmall {
        /// The value found.
        value: u32,
        /// The smallest allowed.
        min: u32,
    },
    /// A number is above the maximum.
    TooLarge {
        /// The value found.
        value: u32,
        /// The largest allowed.
        max: u32,
    },
    /// `ListenAddresses` lists no address.
    NoAddresses,
    /// `ListenAddresses` lists more than [`MAX_ENDPOINTS`] addresses.
    TooManyAddresses,
    /// Entry `index` (0-based) is not UTF-16 text.
    NotText {
        /// Position in the list.
        index: usize,
    },
    /// Entry `index` is not `ADDR:PORT`.
    Unparsable {
        /// Position in the list.
        index: usize,
        /// The entry.
        text: EntryText,
    },
    /// Entry `index` has a port outside 1..=65535 (0 unless ephemeral ports are allowed).
    BadPort {
        /// Position in the list.
        index: usize,
        /// The entry.
        text: EntryText,
    },
    /// Entry `index` repeats an earlier one.
    Duplicate {
        /// Position in the list.
        index: usize,
        /// The entry.
        text: EntryText,
    },
}

/// An invalid configuration value: which one, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The registry value.
    pub value: ValueName,
    /// What is wrong with it.
    pub problem: Problem,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "registry value {}: ", self.value)?;
        match self.problem {
            Problem::WrongType { found, expected } => {
                write!(
                    f,
                    "has registry type {found}, must be {}",
                    type_name(expected)
                )
            }
            Problem::BadLength(len) => write!(f, "data length {len} is invalid for its type"),
            Problem::Zero => f.write_str("must not be 0"),
            Problem::TooSmall { value, min } => write!(f, "{value} is below the minimum {min}"),
            Problem::TooLarge { value, max } => write!(f, "{value} is above the maximum {max}"),
            Problem::NoAddresses => f.write_str("lists no address"),
            Problem::TooManyAddresses => write!(f, "lists more than {MAX_ENDPOINTS} addresses"),
            Problem::NotText { index } => write!(f, "entry {index} is not valid UTF-16 text"),
            Problem::Unparsable { index, text } => write!(
                f,
                "entry {index} {text} is not ADDR:PORT (a.b.c.d:port or [ipv6]:port)"
            ),
            Problem::BadPort { index, text } => {
                write!(f, "entry {index} {text} has a port outside 1..65535")
            }
            Problem::Duplicate { index, text } => {
                write!(f, "entry {index} {text} is listed twice")
            }
        }
    }
}

const fn type_name(reg_type: u32) -> &'static str {
    match reg_type {
        REG_DWORD => "REG_DWORD",
        REG_MULTI_SZ => "REG_MULTI_SZ",
        _ => "another type",
    }
}

/// The validated configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    endpoints: [Option<SocketAddr>; MAX_ENDPOINTS],
    endpoint_count: usize,
    max_connections: u32,
    buffer_size: u32,
    max_connections_per_address: u32,
    idle_timeout: u32,
    no_delay: u32,
}

impl Default for Config {
    /// The defaults of every value.
    fn default() -> Self {
        ConfigBuilder::new().build()
    }
}

impl Config {
    /// The endpoints to listen on (1..=[`MAX_ENDPOINTS`]).
    pub fn endpoints(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.endpoints
            .iter()
            .take(self.endpoint_count)
            .flatten()
            .copied()
    }

    /// Endpoint `index`, if there is one.
    #[must_use]
    pub fn endpoint(&self, index: usize) -> Option<SocketAddr> {
        if index < self.endpoint_count {
            self.endpoints.get(index).copied().flatten()
        } else {
            None
        }
    }

    /// Number of endpoints.
    #[must_use]
    pub const fn endpoint_count(&self) -> usize {
        self.endpoint_count
    }

    /// Most connections open at once.
    #[must_use]
    pub const fn max_connections(&self) -> u32 {
        self.max_connections
    }

    /// `BufferSize`: bytes of buffer per connection, for the handler to size its buffer from.
    #[must_use]
    pub const fn buffer_size(&self) -> u32 {
        self.buffer_size
    }

    /// Most connections one remote address may hold at once; `None`: no limit.
    #[must_use]
    pub const fn max_connections_per_address(&self) -> Option<u32> {
        match self.max_connections_per_address {
            0 => None,
            n => Some(n),
        }
    }

    /// Seconds without progress after which a connection is closed; `None`: never.
    #[must_use]
    pub const fn idle_timeout(&self) -> Option<u32> {
        match self.idle_timeout {
            0 => None,
            n => Some(n),
        }
    }

    /// Whether accepted connections get `TCP_NODELAY` (Nagle's algorithm off).
    #[must_use]
    pub const fn no_delay(&self) -> bool {
        self.no_delay != 0
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ListenAddresses")?;
        for endpoint in self.endpoints() {
            write!(f, " {endpoint}")?;
        }
        write!(
            f,
            ", MaxConnections {}, BufferSize {}, MaxConnectionsPerAddress {}, IdleTimeout {}, NoDelay {}",
            self.max_connections,
            self.buffer_size,
            self.max_connections_per_address,
            self.idle_timeout,
            self.no_delay
        )
    }
}

/// Builds a [`Config`] from values fed in by name; unset values take their defaults.
///
/// Registry path (kernel adapter): for each of [`ValueName::ALL`], query the value; if present,
/// pass its type and data to [`ConfigBuilder::set_raw`]; on the first error fail `DriverEntry`
/// with `STATUS_INVALID_PARAMETER` and log the error. Then [`ConfigBuilder::build`].
#[derive(Clone, Copy, Debug)]
pub struct ConfigBuilder {
    config: Config,
    listen_set: bool,
    allow_ephemeral: bool,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigBuilder {
    /// A builder with every value at its default.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            config: Config {
                endpoints: [None; MAX_ENDPOINTS],
                endpoint_count: 0,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                buffer_size: DEFAULT_BUFFER_SIZE,
                max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
                idle_timeout: DEFAULT_IDLE_TIMEOUT,
                no_delay: DEFAULT_NO_DELAY,
            },
            listen_set: false,
            allow_ephemeral: false,
        }
    }

    /// Accepts port 0 (the system picks a free port) in later addresses. For the host harness
    /// only; the registry path never calls it.
    #[must_use]
    pub const fn allow_ephemeral_ports(mut self) -> Self {
        self.allow_ephemeral = true;
        self
    }

    /// Sets value `name` from raw registry data (`KEY_VALUE_PARTIAL_INFORMATION`'s `Type` and
    /// `Data`): `REG_DWORD` is 4 little-endian bytes, `REG_MULTI_SZ` is UTF-16LE strings, each
    /// NUL-terminated, ending with an empty string (a missing final terminator is tolerated).
    ///
    /// # Errors
    /// The value has the wrong type or length, or its contents are invalid.
    pub fn set_raw(
        &mut self,
        name: ValueName,
        reg_type: u32,
        data: &[u8],
    ) -> Result<(), ConfigError> {
        let error = |problem| ConfigError {
            value: name,
            problem,
        };
        if reg_type != name.expected_type() {
            return Err(error(Problem::WrongType {
                found: reg_type,
                expected: name.expected_type(),
            }));
        }
        match name {
            ValueName::ListenAddresses => {
                if !data.len().is_multiple_of(2) {
                    return Err(error(Problem::BadLength(data.len())));
                }
                let units = data.chunks_exact(2).map(|pair| match pair {
                    [lo, hi] => u16::from_le_bytes([*lo, *hi]),
                    _ => 0,
                });
                self.set_multi_sz_units(units)
            }
            ValueName::MaxConnections
            | ValueName::BufferSize
            | ValueName::MaxConnectionsPerAddress
            | ValueName::IdleTimeout
            | ValueName::NoDelay => {
                let bytes: [u8; 4] = data
                    .try_into()
                    .map_err(|_| error(Problem::BadLength(data.len())))?;
                self.set_dword(name, u32::from_le_bytes(bytes))
            }
        }
    }

    /// Sets a `REG_DWORD` value.
    ///
    /// # Errors
    /// `name` is not a `REG_DWORD` value, or `value` is out of its range.
    pub const fn set_dword(&mut self, name: ValueName, value: u32) -> Result<(), ConfigError> {
        let (min, max) = match name {
            ValueName::MaxConnections => (1, MAX_CONNECTIONS_LIMIT),
            ValueName::BufferSize => (MIN_BUFFER_SIZE, MAX_BUFFER_SIZE),
            // 0 turns the limit off.
            ValueName::MaxConnectionsPerAddress => (0, MAX_CONNECTIONS_LIMIT),
            // 0 turns the timeout off.
            ValueName::IdleTimeout => (0, MAX_IDLE_TIMEOUT),
            ValueName::NoDelay => (0, 1),
            ValueName::ListenAddresses => {
                return Err(ConfigError {
                    value: name,
                    problem: Problem::WrongType {
                        found: REG_DWORD,
                        expected: REG_MULTI_SZ,
                    },
                });
            }
        };
        let problem = if value == 0 && min > 0 {
            Problem::Zero
        } else if value < min {
            Problem::TooSmall { value, min }
        } else if value > max {
            Problem::TooLarge { value, max }
        } else {
            match name {
                ValueName::MaxConnections => self.config.max_connections = value,
                ValueName::MaxConnectionsPerAddress => {
                    self.config.max_connections_per_address = value;
                }
                ValueName::IdleTimeout => self.config.idle_timeout = value,
                ValueName::NoDelay => self.config.no_delay = value,
                ValueName::BufferSize => self.config.buffer_size = value,
                ValueName::ListenAddresses => {} // returned above
            }
            return Ok(());
        };
        Err(ConfigError {
            value: name,
            problem,
        })
    }

    /// Sets `ListenAddresses` from `REG_MULTI_SZ` contents as UTF-16 code units (with or
    /// without the terminating NULs). Does not allocate.
    ///
    /// # Errors
    /// An entry is invalid, there are none, or there are too many.
    pub fn set_listen_addresses_utf16(&mut self, multi_sz: &[u16]) -> Result<(), ConfigError> {
        self.set_multi_sz_units(multi_sz.iter().copied())
    }

    /// Sets `ListenAddresses` from strings (harness, tests).
    ///
    /// # Errors
    /// An entry is invalid, there are none, or there are too many.
    pub fn set_listen_addresses<'s>(
        &mut self,
        entries: impl IntoIterator<Item = &'s str>,
    ) -> Result<(), ConfigError> {
        self.clear_endpoints();
        for (index, entry) in entries.into_iter().enumerate() {
            self.push_endpoint(index, entry)?;
        }
        self.finish_endpoints()
    }

    fn set_multi_sz_units(&mut self, units: impl Iterator<Item = u16>) -> Result<(), ConfigError> {
        self.clear_endpoints();
        let mut units = units.peekable();
        let mut index = 0_usize;
        loop {
            // One entry: up to the next NUL (or the end of the data).
            let mut text = [0_u8; MAX_ENTRY_LEN];
            let mut len = 0_usize;
            let mut too_long = false;
            let mut bad = false;
            let entry = ::core::char::decode_utf16(units.by_ref().take_while(|&u| u != 0));
            for c in entry {
                let Ok(c) = c else {
                    bad = true;
                    continue;
                };
                let mut buf = [0_u8; 4];
                let encoded = c.encode_utf8(&mut buf).as_bytes();
                match len
                    .checked_add(encoded.len())
                    .filter(|&end| end <= MAX_ENTRY_LEN)
                {
                    Some(end) => {
                        if let Some(dst) = text.get_mut(len..end) {
                            dst.copy_from_slice(encoded);
                        }
                        len = end;
                    }
                    None => too_long = true,
                }
            }
            if bad {
                return Err(ConfigError {
                    value: ValueName::ListenAddresses,
                    problem: Problem::NotText { index },
                });
            }
            let text =
                ::core::str::from_utf8(text.get(..len).unwrap_or_default()).unwrap_or_default();
            if text.is_empty() && !too_long {
                break; // the empty string ending the list (or the end of the data)
            }
            if too_long {
                return Err(ConfigError {
                    value: ValueName::ListenAddresses,
                    problem: Problem::Unparsable {
                        index,
                        text: EntryText {
                            truncated: true,
                            ..EntryText::new(text)
                        },
                    },
                });
            }
            self.push_endpoint(index, text)?;
            index = index.saturating_add(1);
            if units.peek().is_none() {
                break;
            }
        }
        self.finish_endpoints()
    }

    const fn clear_endpoints(&mut self) {
        self.config.endpoints = [None; MAX_ENDPOINTS];
        self.config.endpoint_count = 0;
        self.listen_set = true;
    }

    fn push_endpoint(&mut self, index: usize, entry: &str) -> Result<(), ConfigError> {
        let error = |problem| ConfigError {
            value: ValueName::ListenAddresses,
            problem,
        };
        let text = EntryText::new(entry);
        let address = parse_endpoint(entry).map_err(|bad_port| {
            error(if bad_port {
                Problem::BadPort { index, text }
            } else {
                Problem::Unparsable { index, text }
            })
        })?;
        if address.port() == 0 && !self.allow_ephemeral {
            return Err(error(Problem::BadPort { index, text }));
        }
        if self.config.endpoints().any(|known| known == address) {
            return Err(error(Problem::Duplicate { index, text }));
        }
        let count = self.config.endpoint_count;
        let Some(slot) = self.config.endpoints.get_mut(count) else {
            return Err(error(Problem::TooManyAddresses));
        };
        *slot = Some(address);
        self.config.endpoint_count = count.saturating_add(1);
        Ok(())
    }

    const fn finish_endpoints(&self) -> Result<(), ConfigError> {
        if self.config.endpoint_count == 0 {
            return Err(ConfigError {
                value: ValueName::ListenAddresses,
                problem: Problem::NoAddresses,
            });
        }
        Ok(())
    }

    /// The configuration: values set so far, defaults for the others.
    #[must_use]
    pub fn build(mut self) -> Config {
        self.build_in_place();
        self.config
    }

    /// The configuration built in place, without copying it out of the builder (which the
    /// kernel adapter keeps in pool memory: `Config` is ~540 bytes, too much to pass through
    /// `DriverEntry`'s stack frames). Same result as [`ConfigBuilder::build`]; calling it
    /// again, or `build` after it, gives the same configuration.
    pub fn build_in_place(&mut self) -> &Config {
        if !self.listen_set {
            for (slot, text) in self
                .config
                .endpoints
                .iter_mut()
                .zip(DEFAULT_LISTEN_ADDRESSES)
            {
                *slot = text.parse().ok();
            }
            self.config.endpoint_count = DEFAULT_LISTEN_ADDRESSES.len();
        }
        &self.config
    }
}

/// Parses `ADDR:PORT`. `Err(true)` when only the port is wrong (out of 0..=65535).
fn parse_endpoint(text: &str) -> Result<SocketAddr, bool> {
    if let Ok(address) = text.trim().parse::<SocketAddr>() {
        return Ok(address);
    }
    // Tell a bad port from a bad address: re-parse with a valid port.
    let text = text.trim();
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(false);
    };
    let port_is_number = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    let mut probe = [0_u8; MAX_ENTRY_LEN];
    let Some(dst) = probe.get_mut(..host.len()) else {
        return Err(false);
    };
    dst.copy_from_slice(host.as_bytes());
    let Some(end) = host.len().checked_add(2) else {
        return Err(false);
    };
    let Some(suffix) = probe.get_mut(host.len()..end) else {
        return Err(false);
    };
    suffix.copy_from_slice(b":1");
    let host_ok = ::core::str::from_utf8(probe.get(..end).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse::<SocketAddr>().ok())
        .is_some();
    Err(host_ok && port_is_number)
}

#[cfg(all(test, not(loom)))]
mod tests {
    extern crate std;
    use std::{string::ToString, vec::Vec};

    use super::{
        Config, ConfigBuilder, ConfigError, EntryText, MAX_ENDPOINTS, Problem, REG_DWORD,
        REG_MULTI_SZ, REG_SZ, ValueName,
    };

    fn multi_sz(entries: &[&str]) -> Vec<u8> {
        let mut units: Vec<u16> = Vec::new();
        for e in entries {
            units.extend(e.encode_utf16());
            units.push(0);
        }
        units.push(0);
        units.iter().flat_map(|u| u.to_le_bytes()).collect()
    }

    fn listen(entries: &[&str]) -> Result<Config, ConfigError> {
        let mut b = ConfigBuilder::new();
        b.set_raw(ValueName::ListenAddresses, REG_MULTI_SZ, &multi_sz(entries))?;
        Ok(b.build())
    }

    fn listen_problem(entries: &[&str]) -> Problem {
        let e = listen(entries).expect_err("must be rejected");
        assert_eq!(e.value, ValueName::ListenAddresses);
        e.problem
    }

    #[test]
    fn defaults() {
        let c = Config::default();
        let endpoints: Vec<_> = c.endpoints().map(|e| e.to_string()).collect();
        assert_eq!(endpoints, ["127.0.0.1:40007", "[::1]:40007"]);
        assert!(
            c.endpoints().all(|e| e.ip().is_loopback()),
            "the defaults serve this machine only"
        );
        assert_eq!((c.max_connections(), c.buffer_size()), (1024, 16384));
        assert_eq!(c.max_connections_per_address(), Some(64));
        assert_eq!(
            c.to_string(),
            "ListenAddresses 127.0.0.1:40007 [::1]:40007, MaxConnections 1024, BufferSize 16384, MaxConnectionsPerAddress 64, IdleTimeout 120, NoDelay 1"
        );
    }

    #[test]
    fn raw_registry_values() {
        let mut b = ConfigBuilder::new();
        b.set_raw(
            ValueName::ListenAddresses,
            REG_MULTI_SZ,
            &multi_sz(&["127.0.0.1:7", "[::1]:65535"]),
        )
        .unwrap();
        b.set_raw(ValueName::MaxConnections, REG_DWORD, &5_u32.to_le_bytes())
            .unwrap();
        b.set_raw(ValueName::BufferSize, REG_DWORD, &4096_u32.to_le_bytes())
            .unwrap();
        let c = b.build();
        assert_eq!(c.endpoint_count(), 2);
        assert_eq!(
            c.endpoint(1).map(|e| e.to_string()).as_deref(),
            Some("[::1]:65535")
        );
        assert_eq!(c.endpoint(2), None);
        assert_eq!((c.max_connections(), c.buffer_size()), (5, 4096));
    }

    #[test]
    fn multi_sz_without_final_terminators_and_utf16_helper() {
        let units: Vec<u16> = "10.0.0.1:80".encode_utf16().collect();
        let mut b = ConfigBuilder::new();
        b.set_listen_addresses_utf16(&units).unwrap();
        assert_eq!(b.build().endpoint_count(), 1);
        let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_le_bytes()).collect();
        b.set_raw(ValueName::ListenAddresses, REG_MULTI_SZ, &bytes)
            .unwrap();
        assert_eq!(b.build().endpoint(0).map(|e| e.port()), Some(80));
    }

    #[test]
    fn invalid_addresses_name_the_entry() {
        assert!(matches!(
            listen_problem(&["0.0.0.0:0"]),
            Problem::BadPort { index: 0, .. }
        ));
        assert!(matches!(
            listen_problem(&["1.2.3.4:1", "0.0.0.0:65536"]),
            Problem::BadPort { index: 1, .. }
        ));
        assert!(matches!(
            listen_problem(&["[::]:99999"]),
            Problem::BadPort { index: 0, .. }
        ));
        assert!(matches!(
            listen_problem(&["localhost:80"]),
            Problem::Unparsable { index: 0, .. }
        ));
        assert!(
            matches!(listen_problem(&["::1:80"]), Problem::Unparsable { .. }),
            "IPv6 needs brackets"
        );
        assert!(matches!(
            listen_problem(&["1.2.3.4"]),
            Problem::Unparsable { .. }
        ));
        assert!(matches!(
            listen_problem(&["1.2.3.4:http"]),
            Problem::Unparsable { .. }
        ));
        assert!(matches!(
            listen_problem(&["1.2.3.4:1", "1.2.3.4:1"]),
            Problem::Duplicate { index: 1, .. }
        ));
        assert_eq!(listen_problem(&[]), Problem::NoAddresses);
        let long = "1".repeat(200);
        assert!(matches!(
            listen_problem(&[&long]),
            Problem::Unparsable { .. }
        ));
        let many: Vec<std::string::String> = (1..=MAX_ENDPOINTS + 1)
            .map(|p| std::format!("127.0.0.1:{p}"))
            .collect();
        let many: Vec<&str> = many.iter().map(std::string::String::as_str).collect();
        assert_eq!(listen_problem(&many), Problem::TooManyAddresses);
        assert!(listen(&many[..MAX_ENDPOINTS]).is_ok());
    }

    #[test]
    fn errors_display_value_and_reason() {
        let e = listen(&["1.2.3.4:1", "0.0.0.0:0"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "registry value ListenAddresses: entry 1 \"0.0.0.0:0\" has a port outside 1..65535"
        );
        let e = listen(&["bogus"]).unwrap_err();
        assert!(
            e.to_string().contains("entry 0 \"bogus\" is not ADDR:PORT"),
            "{e}"
        );
        let e = ConfigBuilder::new()
            .set_dword(ValueName::BufferSize, 0)
            .unwrap_err();
        assert_eq!(e.to_string(), "registry value BufferSize: must not be 0");
    }

    #[test]
    fn non_text_entry() {
        let bytes: Vec<u8> = [0xD800_u16, 0x41, 0, 0]
            .iter()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let e = ConfigBuilder::new()
            .set_raw(ValueName::ListenAddresses, REG_MULTI_SZ, &bytes)
            .unwrap_err();
        assert_eq!(e.problem, Problem::NotText { index: 0 });
    }

    #[test]
    fn entry_text_keeps_whole_characters_up_to_its_capacity() {
        let short = EntryText::new("1.2.3.4:5");
        assert_eq!((short.as_str(), short.truncated), ("1.2.3.4:5", false));
        assert_eq!(short.to_string(), "\"1.2.3.4:5\"");
        // 1 + 2 * 40 bytes: 31 two-byte characters fit behind the 'a' (63 of 64 bytes).
        let long = std::format!("a{}", "\u{e9}".repeat(40));
        let text = EntryText::new(&long);
        assert_eq!(text.as_str(), std::format!("a{}", "\u{e9}".repeat(31)));
        assert!(text.truncated);
        assert!(text.to_string().ends_with("...\""));
    }

    #[test]
    fn build_in_place_matches_build() {
        let mut defaults = ConfigBuilder::new();
        assert_eq!(*defaults.build_in_place(), ConfigBuilder::new().build());
        assert_eq!(defaults.build_in_place().endpoint_count(), 2, "idempotent");
        assert_eq!(defaults.build(), Config::default());

        let mut b = ConfigBuilder::new();
        b.set_raw(
            ValueName::ListenAddresses,
            REG_MULTI_SZ,
            &multi_sz(&["10.1.2.3:9", "[fe80::1%4]:10"]),
        )
        .unwrap();
        b.set_dword(ValueName::BufferSize, 2048).unwrap();
        let by_value = b.build();
        let in_place = *b.build_in_place();
        assert_eq!(in_place, by_value);
        assert_eq!(in_place.endpoint_count(), 2);
        assert_eq!(
            in_place.endpoint(1).map(|e| e.to_string()).as_deref(),
            Some("[fe80::1%4]:10")
        );
        assert_eq!(in_place.buffer_size(), 2048);

        // Values set after an in-place build still replace the defaults it filled in.
        let mut late = ConfigBuilder::new();
        let _ = late.build_in_place();
        late.set_listen_addresses(["127.0.0.1:5"]).unwrap();
        let endpoints: Vec<_> = late.build().endpoints().map(|e| e.to_string()).collect();
        assert_eq!(endpoints, ["127.0.0.1:5"]);
    }

    #[test]
    fn ephemeral_ports_only_when_allowed() {
        let mut b = ConfigBuilder::new().allow_ephemeral_ports();
        b.set_listen_addresses(["127.0.0.1:0", "[::1]:0"]).unwrap();
        assert_eq!(b.build().endpoint(0).map(|e| e.port()), Some(0));
        let mut b = ConfigBuilder::new();
        assert!(b.set_listen_addresses(["127.0.0.1:0"]).is_err());
    }

    #[test]
    fn numbers_out_of_range() {
        let mut b = ConfigBuilder::new();
        let check = |b: &mut ConfigBuilder, name, v: u32| {
            b.set_dword(name, v).map_err(|e| (e.value, e.problem))
        };
        assert_eq!(
            check(&mut b, ValueName::MaxConnections, 0),
            Err((ValueName::MaxConnections, Problem::Zero))
        );
        assert_eq!(
            check(&mut b, ValueName::MaxConnections, 65_537),
            Err((
                ValueName::MaxConnections,
                Problem::TooLarge {
                    value: 65_537,
                    max: 65_536
                }
            ))
        );
        assert_eq!(
            check(&mut b, ValueName::BufferSize, 0),
            Err((ValueName::BufferSize, Problem::Zero))
        );
        assert_eq!(
            check(&mut b, ValueName::BufferSize, 100),
            Err((
                ValueName::BufferSize,
                Problem::TooSmall {
                    value: 100,
                    min: 512
                }
            ))
        );
        assert_eq!(
            check(&mut b, ValueName::BufferSize, (1 << 20) + 1),
            Err((
                ValueName::BufferSize,
                Problem::TooLarge {
                    value: (1 << 20) + 1,
                    max: 1 << 20
                }
            ))
        );
        assert_eq!(check(&mut b, ValueName::MaxConnections, 65_536), Ok(()));
        assert_eq!(check(&mut b, ValueName::BufferSize, 512), Ok(()));
        assert_eq!(b.build().max_connections(), 65_536);
    }

    #[test]
    fn per_address_limit_is_zero_for_none_up_to_the_connection_limit() {
        let mut b = ConfigBuilder::new();
        let name = ValueName::MaxConnectionsPerAddress;
        assert_eq!(b.set_dword(name, 0), Ok(()));
        assert_eq!(b.build().max_connections_per_address(), None);
        assert_eq!(b.set_raw(name, REG_DWORD, &3_u32.to_le_bytes()), Ok(()));
        assert_eq!(b.build().max_connections_per_address(), Some(3));
        assert_eq!(b.set_dword(name, 65_536), Ok(()));
        let e = b.set_dword(name, 65_537).unwrap_err();
        assert_eq!(
            e.problem,
            Problem::TooLarge {
                value: 65_537,
                max: 65_536
            }
        );
        assert_eq!(
            e.to_string(),
            "registry value MaxConnectionsPerAddress: 65537 is above the maximum 65536"
        );
        let e = b.set_raw(name, REG_SZ, &[0; 4]).unwrap_err();
        assert_eq!(
            (e.value, e.problem),
            (
                name,
                Problem::WrongType {
                    found: REG_SZ,
                    expected: REG_DWORD
                }
            )
        );
        assert_eq!(
            b.build().max_connections_per_address(),
            Some(65_536),
            "errors change nothing"
        );
    }

    #[test]
    fn idle_timeout_is_zero_for_off_up_to_a_day() {
        let mut b = ConfigBuilder::new();
        assert_eq!(b.build().idle_timeout(), Some(120), "the default");
        let name = ValueName::IdleTimeout;
        assert_eq!(b.set_raw(name, REG_DWORD, &0_u32.to_le_bytes()), Ok(()));
        assert_eq!(b.build().idle_timeout(), None);
        assert_eq!(b.set_dword(name, 86_400), Ok(()));
        let e = b.set_dword(name, 86_401).unwrap_err();
        assert_eq!(
            e.to_string(),
            "registry value IdleTimeout: 86401 is above the maximum 86400"
        );
        assert_eq!(
            b.build().idle_timeout(),
            Some(86_400),
            "errors change nothing"
        );
    }

    #[test]
    fn no_delay_is_zero_or_one() {
        let mut b = ConfigBuilder::new();
        assert!(b.build().no_delay(), "the default");
        let name = ValueName::NoDelay;
        assert_eq!(b.set_raw(name, REG_DWORD, &0_u32.to_le_bytes()), Ok(()));
        assert!(!b.build().no_delay());
        let e = b.set_dword(name, 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "registry value NoDelay: 2 is above the maximum 1"
        );
        assert!(!b.build().no_delay(), "errors change nothing");
        assert_eq!(b.set_dword(name, 1), Ok(()));
        assert!(b.build().no_delay());
    }

    #[test]
    fn wrong_types_and_lengths() {
        let mut b = ConfigBuilder::new();
        let e = b
            .set_raw(ValueName::MaxConnections, REG_SZ, &[0; 4])
            .unwrap_err();
        assert_eq!(
            (e.value, e.problem),
            (
                ValueName::MaxConnections,
                Problem::WrongType {
                    found: REG_SZ,
                    expected: REG_DWORD
                }
            )
        );
        assert!(e.to_string().contains("must be REG_DWORD"));
        let e = b
            .set_raw(ValueName::BufferSize, REG_DWORD, &[0; 8])
            .unwrap_err();
        assert_eq!(e.problem, Problem::BadLength(8));
        let e = b
            .set_raw(ValueName::ListenAddresses, REG_DWORD, &[0; 4])
            .unwrap_err();
        assert_eq!(
            e.problem,
            Problem::WrongType {
                found: REG_DWORD,
                expected: REG_MULTI_SZ
            }
        );
        let e = b
            .set_raw(ValueName::ListenAddresses, REG_MULTI_SZ, &[0; 3])
            .unwrap_err();
        assert_eq!(e.problem, Problem::BadLength(3));
        let e = b.set_dword(ValueName::ListenAddresses, 1).unwrap_err();
        assert_eq!(e.value, ValueName::ListenAddresses);
    }

    #[test]
    fn utf16_names_match() {
        for name in ValueName::ALL {
            assert_eq!(
                std::string::String::from_utf16(name.as_utf16()).unwrap(),
                name.as_str()
            );
        }
    }
}

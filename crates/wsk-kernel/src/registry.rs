//! Reading the client's configuration from `<service key>\Parameters` (`PASSIVE_LEVEL` only).
//!
//! The key is opened with `ZwOpenKey(KEY_QUERY_VALUE)`, the one right the reads need, and each
//! value read with `ZwQueryValueKey(KeyValuePartialInformation)`: once to learn its size, then
//! into a pool buffer of exactly that size (tag `WErg`, freed before returning); both calls are
//! made once more when the value grew in between. The raw type and data go
//! to the client's [`ConfigBuilder::set_raw`], which decides what is valid. A missing key or a
//! missing value means "use the default"; any other failure is reported with the value's name.
//!
//! The builder itself also lives in pool memory (tag `WErg`, [`PoolConfig`]), owned by
//! `DriverEntry` until the client is built from it and freed then (or on any failure): a
//! `ConfigBuilder` and the `Config` it builds are ~540 bytes each, too much to keep in (or
//! copy through) `DriverEntry`'s and `read_config`'s stack frames.
//!
//! A driver reads values of its own from the same key with [`Parameters::query`].
//!
//! IRQL: `ZwOpenKey`, `ZwQueryValueKey` and `ZwClose` require `PASSIVE_LEVEL`
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-zwopenkey>,
//! <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-zwqueryvaluekey>,
//! <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-zwclose>).

use core::{
    mem::{align_of, offset_of, size_of},
    ptr::{self, NonNull},
};

use wdk_sys::{
    _KEY_VALUE_INFORMATION_CLASS::KeyValuePartialInformation,
    HANDLE, KEY_QUERY_VALUE, KEY_VALUE_PARTIAL_INFORMATION, NTSTATUS, OBJ_CASE_INSENSITIVE,
    OBJ_KERNEL_HANDLE, OBJECT_ATTRIBUTES, PCUNICODE_STRING, STATUS_BUFFER_OVERFLOW,
    STATUS_BUFFER_TOO_SMALL, STATUS_OBJECT_NAME_NOT_FOUND, ULONG, UNICODE_STRING,
    ntddk::{ZwClose, ZwOpenKey, ZwQueryValueKey},
};

use crate::platform::KernelPlatform;
use wsk_client::config::{Config, ConfigBuilder, ConfigError, ValueName};
use wsk_primitives::{
    platform::{Platform, PoolTag},
    pool::POOL_ALIGNMENT,
    status::NtStatus,
};

/// Pool tag of the temporary registry buffers.
const REGISTRY_TAG: PoolTag = PoolTag::from_chars(*b"WErg");

/// `\Parameters`, appended to the service key path.
const PARAMETERS_SUFFIX: [u16; 11] = {
    let ascii = b"\\Parameters";
    let mut out = [0_u16; 11];
    let mut i = 0;
    while i < ascii.len() {
        out[i] = ascii[i] as u16;
        i += 1;
    }
    out
};

/// `sizeof(OBJECT_ATTRIBUTES)` for its `Length` member (48 on x64).
const OBJECT_ATTRIBUTES_SIZE: ULONG = 48;
const _: () = assert!(size_of::<OBJECT_ATTRIBUTES>() == OBJECT_ATTRIBUTES_SIZE as usize);

/// Largest value data accepted (far above any valid configuration).
const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Why the configuration could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// A value is present but invalid: the client's description, naming the value.
    Invalid(ConfigError),
    /// The registry call failed for another reason.
    Registry {
        /// What was being read.
        what: &'static str,
        /// The status of the failed call.
        status: NtStatus,
    },
}

/// A zeroed pool buffer, freed on drop.
struct PoolBuffer {
    ptr: NonNull<u8>,
    len: usize,
}

impl PoolBuffer {
    fn new(len: usize) -> Option<Self> {
        KernelPlatform
            .allocate(len, REGISTRY_TAG)
            .map(|ptr| Self { ptr, len })
    }
}

impl Drop for PoolBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated by `new` with the same tag, not used after this.
        unsafe { KernelPlatform.free(self.ptr, REGISTRY_TAG) };
    }
}

/// The open `<service key>\Parameters` key, closed on drop.
pub struct Parameters(HANDLE);

impl Drop for Parameters {
    fn drop(&mut self) {
        // SAFETY: a kernel handle from ZwOpenKey, closed once, at PASSIVE_LEVEL.
        let _ = unsafe { ZwClose(self.0) };
    }
}

/// A [`ConfigBuilder`] in a pool block (tag `WErg`), freed on drop: the configuration being
/// read, kept out of the stack frames (module documentation).
pub struct PoolConfig(PoolBuffer);

const _: () = assert!(align_of::<ConfigBuilder>() <= POOL_ALIGNMENT);

impl PoolConfig {
    /// A builder with every value at its default, or `None` without pool memory.
    #[must_use]
    pub fn new() -> Option<Self> {
        let buffer = PoolBuffer::new(size_of::<ConfigBuilder>())?;
        let builder = buffer.ptr.cast::<ConfigBuilder>();
        // SAFETY: the block holds `size_of::<ConfigBuilder>()` bytes and pool memory is
        // 16-byte aligned (checked against the builder's alignment above); nothing else uses
        // it yet.
        unsafe { builder.write(ConfigBuilder::new()) };
        Some(Self(buffer))
    }

    const fn builder(&mut self) -> &mut ConfigBuilder {
        // SAFETY: initialised by `new`; borrowed through `self`, so not aliased.
        unsafe { self.0.ptr.cast::<ConfigBuilder>().as_mut() }
    }

    /// The configuration: the values read, defaults for the others (built in place, not
    /// copied out of the pool block).
    pub fn config(&mut self) -> &Config {
        self.builder().build_in_place()
    }
}

/// Reads the configuration from `registry_path\Parameters` (the `RegistryPath` argument of
/// `DriverEntry`) into a [`PoolConfig`]. `PASSIVE_LEVEL`.
///
/// # Errors
/// An invalid value (the core's error), a registry failure other than "not found", or no pool
/// memory for the builder.
///
/// # Safety
/// `registry_path` is the valid `UNICODE_STRING` passed to `DriverEntry`.
// Out of line: its frame (value buffer, configuration builder) must not add to
// `DriverEntry`'s (docs/performance.md, part 7).
#[inline(never)]
pub unsafe fn read_config(registry_path: PCUNICODE_STRING) -> Result<PoolConfig, ReadError> {
    let mut config = PoolConfig::new().ok_or(ReadError::Registry {
        what: "the configuration (pool memory for its builder)",
        status: NtStatus::INSUFFICIENT_RESOURCES,
    })?;
    // SAFETY: forwarded caller guarantee.
    let Some(key) = (unsafe { Parameters::open(registry_path) })? else {
        return Ok(config);
    };
    for name in ValueName::ALL {
        // SAFETY: PASSIVE_LEVEL (caller).
        unsafe { read_value(&key, name, config.builder()) }?;
    }
    Ok(config)
}

impl Parameters {
    /// Opens `registry_path\Parameters` for reading; `Ok(None)` if it does not exist.
    /// `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// A registry failure other than "not found", or no pool memory for the key's path.
    ///
    /// # Safety
    /// `registry_path` is a valid `UNICODE_STRING` (`DriverEntry`'s `RegistryPath`).
    pub unsafe fn open(registry_path: PCUNICODE_STRING) -> Result<Option<Self>, ReadError> {
        let failed = |status: NtStatus| ReadError::Registry {
            what: "the Parameters key path",
            status,
        };
        // SAFETY: valid UNICODE_STRING (caller).
        let base = unsafe { registry_path.read() };
        let base_len = usize::from(base.Length);
        let suffix_len = PARAMETERS_SUFFIX.len() * 2;
        let total = base_len
            .checked_add(suffix_len)
            .ok_or_else(|| failed(NtStatus::INVALID_PARAMETER))?;
        let length = u16::try_from(total).map_err(|_| failed(NtStatus::INVALID_PARAMETER))?;
        let buffer =
            PoolBuffer::new(total).ok_or_else(|| failed(NtStatus::INSUFFICIENT_RESOURCES))?;
        if base_len > 0 && !base.Buffer.is_null() {
            // SAFETY: `base.Buffer` holds `base.Length` bytes; the pool buffer holds `total` >=
            // `base_len` bytes; they do not overlap.
            unsafe {
                ptr::copy_nonoverlapping(base.Buffer.cast::<u8>(), buffer.ptr.as_ptr(), base_len);
            }
        }
        let suffix_at = buffer.ptr.as_ptr().wrapping_add(base_len);
        // SAFETY: the suffix fits behind the base path (total = base_len + suffix_len).
        unsafe {
            ptr::copy_nonoverlapping(
                PARAMETERS_SUFFIX.as_ptr().cast::<u8>(),
                suffix_at,
                suffix_len,
            );
        }
        let mut path = UNICODE_STRING {
            Length: length,
            MaximumLength: length,
            Buffer: buffer.ptr.as_ptr().cast(),
        };
        let mut attributes = OBJECT_ATTRIBUTES {
            Length: OBJECT_ATTRIBUTES_SIZE,
            RootDirectory: ptr::null_mut(),
            ObjectName: &raw mut path,
            Attributes: OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
            SecurityDescriptor: ptr::null_mut(),
            SecurityQualityOfService: ptr::null_mut(),
        };
        let mut handle: HANDLE = ptr::null_mut();
        // SAFETY: `attributes` (InitializeObjectAttributes done by hand) and `path` are valid for
        // the call; PASSIVE_LEVEL (caller of read_config).
        let status = unsafe { ZwOpenKey(&raw mut handle, KEY_QUERY_VALUE, &raw mut attributes) };
        drop(buffer);
        match status {
            s if s >= 0 => Ok(Some(Self(handle))),
            STATUS_OBJECT_NAME_NOT_FOUND => Ok(None),
            s => Err(ReadError::Registry {
                what: "the Parameters key",
                status: NtStatus(s),
            }),
        }
    }

    /// Queries the value named `units` (UTF-16; `what`, its name for errors) and hands its type and
    /// data to `take`. `Ok(false)` (and `take` not called) when the value does not exist; a value
    /// above 64 KiB is an error. `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// `take`'s error, or a registry failure (as [`ReadError::Registry`]).
    ///
    /// # Safety
    /// `PASSIVE_LEVEL`.
    pub unsafe fn query<E: From<ReadError>>(
        &self,
        units: &[u16],
        what: &'static str,
        take: impl FnOnce(u32, &[u8]) -> Result<(), E>,
    ) -> Result<bool, E> {
        let failed = |status: NtStatus| E::from(ReadError::Registry { what, status });
        let name_len =
            u16::try_from(units.len() * 2).map_err(|_| failed(NtStatus::INVALID_PARAMETER))?;
        // ZwQueryValueKey does not write through ValueName; the cast to *mut is the C signature.
        let mut value_name = UNICODE_STRING {
            Length: name_len,
            MaximumLength: name_len,
            Buffer: units.as_ptr().cast_mut(),
        };

        let header = offset_of!(KEY_VALUE_PARTIAL_INFORMATION, Data);
        // The value may grow between the size query and the read (another thread writing it):
        // the read then reports STATUS_BUFFER_OVERFLOW or STATUS_BUFFER_TOO_SMALL, and both calls
        // are made once more with the new size. A value that grows again fails with that status.
        let mut attempts = 0;
        let buffer = loop {
            attempts += 1;
            let mut needed: ULONG = 0;
            // SAFETY: size query: no buffer, only `needed` is written.
            let status = unsafe {
                ZwQueryValueKey(
                    self.0,
                    &raw mut value_name,
                    KeyValuePartialInformation,
                    ptr::null_mut(),
                    0,
                    &raw mut needed,
                )
            };
            match status {
                STATUS_OBJECT_NAME_NOT_FOUND => return Ok(false),
                STATUS_BUFFER_TOO_SMALL | STATUS_BUFFER_OVERFLOW => {}
                s if s >= 0 => {}
                s => return Err(failed(NtStatus(s))),
            }
            let needed =
                usize::try_from(needed).map_err(|_| failed(NtStatus::INVALID_PARAMETER))?;
            if needed > MAX_VALUE_BYTES + header {
                return Err(failed(NtStatus::INVALID_PARAMETER));
            }
            let size = needed.max(size_of::<KEY_VALUE_PARTIAL_INFORMATION>());
            let buffer =
                PoolBuffer::new(size).ok_or_else(|| failed(NtStatus::INSUFFICIENT_RESOURCES))?;
            let length =
                ULONG::try_from(buffer.len).map_err(|_| failed(NtStatus::INVALID_PARAMETER))?;
            let mut returned: ULONG = 0;
            // SAFETY: `buffer` holds `length` bytes for the structure the call writes.
            let status: NTSTATUS = unsafe {
                ZwQueryValueKey(
                    self.0,
                    &raw mut value_name,
                    KeyValuePartialInformation,
                    buffer.ptr.as_ptr().cast(),
                    length,
                    &raw mut returned,
                )
            };
            match status {
                STATUS_OBJECT_NAME_NOT_FOUND => return Ok(false),
                STATUS_BUFFER_TOO_SMALL | STATUS_BUFFER_OVERFLOW if attempts == 1 => {}
                s if s < 0 => return Err(failed(NtStatus(s))),
                _ => break buffer,
            }
        };
        // SAFETY: the call succeeded, so the buffer starts with a KEY_VALUE_PARTIAL_INFORMATION;
        // pool memory is 16-byte aligned.
        let info = unsafe {
            buffer
                .ptr
                .cast::<KEY_VALUE_PARTIAL_INFORMATION>()
                .as_ptr()
                .read()
        };
        let data_len = info.DataLength as usize;
        if header
            .checked_add(data_len)
            .is_none_or(|end| end > buffer.len)
        {
            return Err(failed(NtStatus::INVALID_PARAMETER));
        }
        // SAFETY: `data_len` bytes at `header` lie within the buffer (checked above) and were
        // written by the call.
        let data = unsafe {
            core::slice::from_raw_parts(buffer.ptr.as_ptr().wrapping_add(header), data_len)
        };
        take(info.Type, data).map(|()| true)
    }
}

/// Queries `name` under `key` into `builder`; a missing value leaves the default.
///
/// # Safety
/// `PASSIVE_LEVEL`.
unsafe fn read_value(
    key: &Parameters,
    name: ValueName,
    builder: &mut ConfigBuilder,
) -> Result<(), ReadError> {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        key.query(name.as_utf16(), name.as_str(), |reg_type, data| {
            builder
                .set_raw(name, reg_type, data)
                .map_err(ReadError::Invalid)
        })
    }
    .map(|_| ())
}

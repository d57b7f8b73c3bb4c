//! The harness catches a misbehaving client: a rogue NMR client drives the `Provider` the
//! wrong way (no driver core involved), and each violation must be recorded.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use wsk_client::provider::{Provider, SocketKind};
use wsk_harness::{
    contract::Contract,
    driver::{Subsystem, check_unloaded},
    host_provider::HostProvider,
    irql,
    nmr::{BindingHandle, ClientModule, ContextPtr, Nmr, NmrMode, ProviderCharacteristics},
    pool::Pool,
    wsk::{Wsk, WskMode},
};
use wsk_primitives::{platform::Level, status::NtStatus};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Misbehavior {
    /// Detach returns SUCCESS; the test then calls into WSK anyway.
    CallAfterDetach,
    /// Detach completes twice, then returns PENDING.
    CompleteTwice,
    /// Detach returns PENDING and never completes.
    NeverComplete,
}

struct Rogue {
    misbehavior: Misbehavior,
    provider: Mutex<Option<Arc<HostProvider>>>,
}

impl ClientModule<Subsystem> for Rogue {
    fn attach_provider(
        &self,
        handle: BindingHandle<Subsystem>,
        _p: ProviderCharacteristics,
    ) -> NtStatus {
        match handle.client_attach_provider(ContextPtr(std::ptr::null_mut())) {
            Ok(client) => {
                *self.provider.lock().unwrap() = Some(Arc::new(HostProvider(client)));
                NtStatus::SUCCESS
            }
            Err(status) => status,
        }
    }

    fn detach_provider(&self, _context: ContextPtr) -> NtStatus {
        let provider = self.provider.lock().unwrap().clone().unwrap();
        match self.misbehavior {
            Misbehavior::CallAfterDetach => NtStatus::SUCCESS,
            Misbehavior::CompleteTwice => {
                HostProvider::detach_complete(provider.detach_handle());
                HostProvider::detach_complete(provider.detach_handle());
                NtStatus::PENDING
            }
            Misbehavior::NeverComplete => NtStatus::PENDING,
        }
    }

    fn cleanup_binding_context(&self, _context: ContextPtr) {}
}

struct Rig {
    contract: Arc<Contract>,
    nmr: Nmr<Subsystem>,
    wsk: Subsystem,
    rogue: Arc<Rogue>,
}

fn rig(misbehavior: Misbehavior) -> Rig {
    let contract = Arc::new(Contract::new());
    let pool = Pool::new(Arc::clone(&contract), Some(Level::Error));
    let wsk = Wsk::start(Arc::clone(&contract), pool, WskMode::default()).unwrap();
    let mode = NmrMode {
        wait_timeout: Duration::from_millis(300),
        ..NmrMode::default()
    };
    let nmr = Nmr::new(Arc::clone(&contract), mode);
    nmr.register_provider(Arc::new(wsk.clone()));
    let rogue = Arc::new(Rogue {
        misbehavior,
        provider: Mutex::new(None),
    });
    nmr.register_client(Arc::clone(&rogue) as Arc<dyn ClientModule<Subsystem>>);
    assert!(rogue.provider.lock().unwrap().is_some(), "attached");
    Rig {
        contract,
        nmr,
        wsk,
        rogue,
    }
}

#[test]
fn a_call_into_wsk_after_the_detach_completed_is_caught() {
    let rig = rig(Misbehavior::CallAfterDetach);
    let provider = rig.rogue.provider.lock().unwrap().clone().unwrap();
    assert_eq!(provider.enable_accept_events(), Ok(()));
    assert_eq!(rig.nmr.deregister_client(), NtStatus::PENDING);
    assert!(rig.nmr.wait_client_deregistered());
    assert_eq!(rig.contract.count(), 0, "{:?}", rig.contract.violations());
    let _ = provider.enable_accept_events();
    let violations = rig.contract.violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(
        violations[0].contains("WskControlClient called after the detach"),
        "{violations:?}"
    );
    rig.wsk.stop();
}

#[test]
fn socket_io_without_an_echo_buffer_for_a_connection_is_caught() {
    let rig = rig(Misbehavior::CallAfterDetach);
    let provider = rig.rogue.provider.lock().unwrap().clone().unwrap();
    let io = provider.new_socket_io(SocketKind::Connection, None);
    assert!(io.is_ok());
    assert_eq!(rig.contract.count(), 1, "{:?}", rig.contract.violations());
    drop(io);
    assert_eq!(rig.nmr.deregister_client(), NtStatus::PENDING);
    assert!(rig.nmr.wait_client_deregistered());
    rig.wsk.stop();
}

#[test]
fn completing_a_detach_twice_is_caught() {
    let rig = rig(Misbehavior::CompleteTwice);
    assert_eq!(rig.nmr.deregister_client(), NtStatus::PENDING);
    assert!(rig.nmr.wait_client_deregistered());
    let violations = rig.contract.violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].contains("called 2 times"), "{violations:?}");
    rig.wsk.stop();
}

#[test]
fn a_detach_that_never_completes_and_an_early_unload_are_caught() {
    let rig = rig(Misbehavior::NeverComplete);
    assert_eq!(rig.nmr.deregister_client(), NtStatus::PENDING);
    // A blocking wait from a DISPATCH_LEVEL callback is refused and recorded.
    assert!(!irql::at_dispatch(|| rig.nmr.wait_client_deregistered()));
    assert!(rig.contract.violations()[0].contains("at DISPATCH_LEVEL"));
    // The bounded wait gives up and records it; returning from Unload now is caught too.
    assert!(!rig.nmr.wait_client_deregistered());
    check_unloaded(&rig.nmr, &rig.contract);
    let violations = rig.contract.violations();
    assert_eq!(violations.len(), 3, "{violations:?}");
    assert!(violations[1].contains("did not complete"), "{violations:?}");
    assert!(
        violations[2].contains("Unload returned before"),
        "{violations:?}"
    );
    // Let the rogue finish so the threads wind down.
    let provider = rig.rogue.provider.lock().unwrap().clone().unwrap();
    HostProvider::detach_complete(provider.detach_handle());
    assert!(rig.nmr.wait_client_deregistered());
    rig.wsk.stop();
}

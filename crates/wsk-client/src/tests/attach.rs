//! Attach: version check, allocation and NMR failures, listeners opening or failing.

extern crate std;

use std::{boxed::Box, string::String, sync::Arc};

use super::{attach_and_listen, client, complete_setup, config, finish, lines, one_listener};
use crate::{
    binding::BINDING_TAG,
    client::Client,
    provider::Completion,
    socket::LISTENER_TAG,
    startup::Startup,
    testing::provider::{Call, Mode, TestProvider, TestSocket, World},
    wsk_version::WskVersionRange,
};
use wsk_primitives::{platform::Level, status::NtStatus};

#[test]
fn attach_enables_accept_events_then_opens_and_binds_every_listener() {
    let world = World::new(Mode::Pending);
    let client = client(&config(&["0.0.0.0:40007", "[::]:40007"], 8, 512));
    // SAFETY: the client outlives the binding.
    let status = unsafe { world.attach_1_0(&client) };
    assert_eq!(status, NtStatus::SUCCESS);
    let calls = world.calls();
    assert_eq!(
        calls.first().map(String::as_str),
        Some("enable_accept_events")
    );
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(
        calls[1].contains("Open(0.0.0.0:40007)") && calls[2].contains("Open([::]:40007)"),
        "{calls:?}"
    );
    assert_eq!(client.stats().snapshot().listeners_open, 0);
    complete_setup(&world);
    let calls = world.calls();
    assert_eq!(calls.iter().filter(|c| c.starts_with("Bind")).count(), 2);
    let v6 = |c: &str| c.contains("Bind([::]:40007)");
    let option = calls.iter().position(|c| c == "SetIpv6Only");
    assert!(
        option.is_some_and(|i| calls[i + 1..].iter().any(|c| v6(c))),
        "IPV6_V6ONLY set on the IPv6 listener, before its bind: {calls:?}"
    );
    assert_eq!(
        calls.iter().filter(|c| *c == "SetIpv6Only").count(),
        1,
        "not on the IPv4 listener: {calls:?}"
    );
    assert_eq!(client.stats().snapshot().listeners_open, 2);
    assert_eq!(world.listeners().len(), 2);
    let trace = lines(&client, Level::Trace);
    assert!(trace.iter().any(|l| l.contains("attached")), "{trace:?}");
    assert!(
        trace.iter().any(|l| l == "listener [::]:40007: listening"),
        "{trace:?}"
    );
    finish(&world, &client);
    assert_eq!(client.stats().snapshot().listeners_open, 0);
}

#[test]
fn provider_without_wsk_1_0_is_declined_and_nothing_allocated() {
    let world = World::new(Mode::Pending);
    let client = client(&config(&["127.0.0.1:7"], 8, 512));
    for (lowest, highest) in [(0x0101, 0x0200), (0x0000, 0x00FF)] {
        // SAFETY: the client outlives the binding.
        let status = unsafe { world.attach(&client, WskVersionRange { highest, lowest }) };
        assert_eq!(status, NtStatus::NOINTERFACE);
    }
    assert_eq!(client.platform().allocations(), 0);
    assert_eq!(client.live_bindings(), 0);
    assert!(world.calls().is_empty());
    assert!(
        lines(&client, Level::Warning)
            .iter()
            .any(|l| l.contains("0xC00002B9"))
    );
}

#[test]
fn allocation_failures_fail_the_attach_and_free_everything() {
    for fail_at in 0..2 {
        let world = World::new(Mode::Pending);
        let client = client(&config(&["127.0.0.1:7"], 8, 512));
        client.platform().fail_allocation_after(fail_at);
        // SAFETY: the client outlives the binding.
        let status = unsafe { world.attach_1_0(&client) };
        assert_eq!(
            status,
            NtStatus::INSUFFICIENT_RESOURCES,
            "failing allocation {fail_at}"
        );
        assert_eq!(client.live_bindings(), 0);
        assert!(world.calls().is_empty());
        client.platform().assert_clean();
        assert_eq!(
            client.settle_startup(|| false),
            Err(NtStatus::INSUFFICIENT_RESOURCES),
            "DriverEntry fails: nothing can be served"
        );
        assert!(
            lines(&client, Level::Error)
                .iter()
                .any(|l| l.contains("0xC000009A"))
        );
    }
}

#[test]
fn nmr_attach_failure_frees_the_binding_and_returns_its_status() {
    let world = World::new(Mode::Pending);
    let client = client(&config(&["127.0.0.1:7"], 8, 512));
    world.fail_attach(NtStatus::DEVICE_NOT_READY);
    // SAFETY: the client outlives the binding.
    let status = unsafe { world.attach_1_0(&client) };
    assert_eq!(status, NtStatus::DEVICE_NOT_READY);
    assert_eq!(
        client.settle_startup(|| false),
        Err(NtStatus::DEVICE_NOT_READY)
    );
    assert_eq!(client.live_bindings(), 0);
    assert_eq!(client.platform().live_with_tag(BINDING_TAG), 0);
    client.platform().assert_clean();
    assert!(
        world.calls().is_empty(),
        "no WSK call without an attachment"
    );
    assert!(
        lines(&client, Level::Error)
            .iter()
            .any(|l| l.contains("0xC00000A3"))
    );
    // A later attach works, and start-up reads the latest attach.
    attach_and_listen(&world, &client);
    assert_eq!(client.settle_startup(|| false), Ok(()));
    finish(&world, &client);
}

/// Attaches listeners on `127.0.0.1:7` and `[::1]:7`, completes the setup steps `before`
/// matches, fails the step `failing` with `completion`, and checks what any such failure does:
/// that listener is closed, an error line names the listener, `what` and `status`, one failure
/// is counted and the other listener is open. Returns the world and client for more checks.
fn fail_one_listener_step(
    before: impl Fn(&Call) -> bool,
    failing: &Call,
    completion: Completion<TestSocket>,
    (listener, what, status): (&str, &str, &str),
) -> (Arc<World>, Box<Client<TestProvider>>) {
    let world = World::new(Mode::Pending);
    let client = client(&config(&["127.0.0.1:7", "[::1]:7"], 8, 512));
    // SAFETY: the client outlives the binding.
    assert!(unsafe { world.attach_1_0(&client) }.is_success());
    while let Some(op) = world.take(|op| before(&op.call)) {
        world.succeed(op);
    }
    let op = world
        .take(|op| op.call == *failing)
        .expect("the step to fail");
    world.complete(op, completion);
    let close = world
        .take(|op| op.call == Call::Close)
        .expect("the failed listener closed");
    world.succeed(close);
    complete_setup(&world);
    let errors = lines(&client, Level::Error);
    assert!(
        errors
            .iter()
            .any(|l| l.contains(listener) && l.contains(what) && l.contains(status)),
        "{errors:?}"
    );
    let stats = client.stats().snapshot();
    assert_eq!((stats.failures, stats.listeners_open), (1, 1));
    (world, client)
}

#[test]
fn ipv6_only_failure_closes_that_listener_and_the_others_keep_serving() {
    let (world, client) = fail_one_listener_step(
        |c| matches!(c, Call::Open(_)),
        &Call::SetIpv6Only,
        Completion::OptionSet(Err(NtStatus::INVALID_PARAMETER)),
        ("[::1]:7", "WskControlSocket(IPV6_V6ONLY)", "0xC000000D"),
    );
    assert!(
        !world.calls().iter().any(|c| c.contains("Bind([::1]:7)")),
        "never bound without the option"
    );
    finish(&world, &client);
}

#[test]
fn bind_failure_closes_that_listener_and_the_others_keep_serving() {
    let (world, client) = fail_one_listener_step(
        |c| matches!(c, Call::Open(_) | Call::SetIpv6Only),
        &Call::Bind("127.0.0.1:7".parse().unwrap()),
        Completion::Bound(Err(NtStatus::ADDRESS_ALREADY_EXISTS)),
        ("127.0.0.1:7", "WskBind", "0xC000020A"),
    );
    assert_eq!(
        client.startup().snapshot(),
        Startup::Settled {
            open: 1,
            failed: 1,
            first_failure: NtStatus::ADDRESS_ALREADY_EXISTS
        }
    );
    assert_eq!(
        client.settle_startup(|| false),
        Ok(()),
        "one endpoint serves"
    );
    assert!(
        lines(&client, Level::Warning)
            .iter()
            .any(|l| l.contains("serving on 1 of 2 endpoint(s)")),
        "the start says which part failed"
    );
    assert_eq!(
        client.platform().live_with_tag(LISTENER_TAG),
        1,
        "failed listener freed"
    );
    let listeners = world.listeners();
    assert_eq!(listeners.len(), 1);
    assert!(
        world.accept(listeners[0], None).is_ok(),
        "the other listener still accepts"
    );
    finish(&world, &client);
}

#[test]
fn socket_creation_failure_frees_the_listener_without_close() {
    let world = World::new(Mode::Pending);
    let client = client(&config(&["127.0.0.1:7"], 8, 512));
    // SAFETY: the client outlives the binding.
    assert!(unsafe { world.attach_1_0(&client) }.is_success());
    let open = world.take(|op| matches!(op.call, Call::Open(_))).unwrap();
    world.complete(
        open,
        Completion::Created(Err(NtStatus::INSUFFICIENT_RESOURCES)),
    );
    assert_eq!(world.pending_count(), 0, "no socket, nothing to close");
    assert_eq!(client.platform().live_with_tag(LISTENER_TAG), 0);
    assert_eq!(client.stats().snapshot().failures, 1);
    assert_eq!(
        client.settle_startup(|| false),
        Err(NtStatus::INSUFFICIENT_RESOURCES),
        "the only listener failed: DriverEntry fails with its status"
    );
    assert!(
        lines(&client, Level::Error)
            .iter()
            .any(|l| l.contains("WskSocket failed with 0xC000009A"))
    );
    finish(&world, &client);
}

#[test]
fn listener_allocation_or_io_failure_is_logged_and_counted() {
    let world = World::new(Mode::Pending);
    let client = client(&config(&["127.0.0.1:7", "127.0.0.1:8"], 8, 512));
    client.platform().fail_tag(Some(LISTENER_TAG));
    // SAFETY: the client outlives the binding.
    assert!(unsafe { world.attach_1_0(&client) }.is_success());
    assert_eq!(client.stats().snapshot().failures, 2);
    assert_eq!(world.pending_count(), 0);
    assert_eq!(
        client.settle_startup(|| false),
        Err(NtStatus::INSUFFICIENT_RESOURCES)
    );
    assert!(
        lines(&client, Level::Error)
            .iter()
            .any(|l| l.contains("start failed: none of the 2 listener(s) could be opened")),
        "{:?}",
        lines(&client, Level::Error)
    );
    finish(&world, &client);

    let world = World::new(Mode::Pending);
    let client = super::client(&config(&["127.0.0.1:7"], 8, 512));
    world.fail_socket_io(Some(NtStatus::INSUFFICIENT_RESOURCES));
    // SAFETY: the client outlives the binding.
    assert!(unsafe { world.attach_1_0(&client) }.is_success());
    assert!(
        lines(&client, Level::Error)
            .iter()
            .any(|l| l.contains("127.0.0.1:7") && l.contains("0xC000009A"))
    );
    finish(&world, &client);
}

#[test]
fn enable_accept_events_failure_opens_no_listener() {
    let world = World::new(Mode::Pending);
    let client = client(&config(&["127.0.0.1:7"], 8, 512));
    world.fail_enable_accept_events(NtStatus::UNSUCCESSFUL);
    // SAFETY: the client outlives the binding.
    let status = unsafe { world.attach_1_0(&client) };
    assert!(status.is_success(), "the attachment itself stands");
    assert_eq!(world.calls(), ["enable_accept_events"]);
    assert!(
        lines(&client, Level::Error)
            .iter()
            .any(|l| l.contains("0xC0000001"))
    );
    finish(&world, &client);
}

#[test]
fn dead_listener_is_closed() {
    let (world, client) = one_listener(8, 512);
    let listener = world.listeners()[0];
    let before = world.timeline().len();
    assert!(world.accept_with(listener, None, None).is_err());
    assert_eq!(
        world.timeline()[before..],
        ["accept_event(None)", "work_item", "Close"],
        "the close is made after the accept event returned"
    );
    let close = world
        .take(|op| op.call == Call::Close)
        .expect("dead listener closed");
    world.succeed(close);
    assert_eq!(client.stats().snapshot().listeners_open, 0);
    assert!(
        lines(&client, Level::Warning)
            .iter()
            .any(|l| l.contains("stopped working"))
    );
    finish(&world, &client);
}

#[test]
fn start_up_waits_while_listeners_open_and_reports_no_attach() {
    let world = World::new(Mode::Pending);
    let client = client(&config(&["127.0.0.1:7"], 8, 512));
    assert_eq!(client.settle_startup(|| false), Ok(()), "no provider yet");
    assert!(
        lines(&client, Level::Info)
            .iter()
            .any(|l| l.contains("no WSK provider has attached yet"))
    );
    // SAFETY: the client outlives the binding.
    assert!(unsafe { world.attach_1_0(&client) }.is_success());
    assert_eq!(client.startup().snapshot(), Startup::Opening { pending: 1 });
    // The pause is where DriverEntry sleeps: here it completes the listener's setup.
    let mut pauses = 0;
    let verdict = client.settle_startup(|| {
        pauses += 1;
        complete_setup(&world);
        true
    });
    assert_eq!((verdict, pauses), (Ok(()), 1));
    finish(&world, &client);
}

#[test]
fn enable_accept_events_failure_fails_the_start() {
    let world = World::new(Mode::Pending);
    let client = client(&config(&["127.0.0.1:7", "[::1]:7"], 8, 512));
    world.fail_enable_accept_events(NtStatus::INVALID_DEVICE_STATE);
    // SAFETY: the client outlives the binding.
    assert!(unsafe { world.attach_1_0(&client) }.is_success());
    assert_eq!(
        client.settle_startup(|| false),
        Err(NtStatus::INVALID_DEVICE_STATE)
    );
    finish(&world, &client);
}

#[test]
fn a_new_registration_forgets_the_previous_ones_start_up() {
    // As a PnP device: the device stops (deregistration: the binding detaches), then starts again.
    let (world, client) = one_listener(4, 512);
    assert_eq!(world.detach(), NtStatus::PENDING);
    world.drain();
    assert!(world.cleanup());
    assert_eq!(client.startup().snapshot(), Startup::Detached);
    client.registration_begins();
    assert_eq!(
        client.startup().snapshot(),
        Startup::NotAttached,
        "the new registration is judged on its own attach"
    );
    attach_and_listen(&world, &client);
    assert_eq!(
        client.startup().snapshot(),
        Startup::Settled {
            open: 1,
            failed: 0,
            first_failure: NtStatus::SUCCESS
        }
    );
    finish(&world, &client);
}

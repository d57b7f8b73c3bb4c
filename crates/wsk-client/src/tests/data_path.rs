//! The data path through a handler (the test double's `Mirror`): order, partial sends,
//! backpressure, FIN, errors, no steady-state allocation.

use super::{connect, finish, lines, one_listener, take_receive, take_send};
use crate::{
    provider::Completion,
    socket::CONNECTION_TAG,
    testing::{
        mirror::MIRROR,
        provider::{Call, Mode},
        scenario,
    },
};
use wsk_primitives::{platform::Level, status::NtStatus};

#[test]
fn accepted_connection_posts_its_first_receive_over_the_whole_buffer() {
    let (world, client) = one_listener(4, 512);
    let io = connect(&world);
    let receive = take_receive(&world, io).expect("first receive, from the connection's work item");
    assert_eq!(receive.call, Call::Receive(0..512));
    assert!(
        lines(&client, Level::Info)
            .iter()
            .any(|l| l.contains("192.0.2.1:4000") && l.contains("accepted"))
    );
    world.complete(receive, Completion::Received(Err(NtStatus::CANCELLED)));
    world.drain();
    finish(&world, &client);
}

#[test]
fn wsk_calls_are_made_by_work_items_after_the_callbacks_returned() {
    // Inline mode: sends complete inside WskSend, so a completion's follow-up would be made
    // inside a callback if the runner ran where it became the runner. The double records a
    // violation for any call made while a completion or an accept event executes.
    let (world, client) = one_listener(4, 512);
    world.set_mode(Mode::Inline);
    let io = connect(&world);
    let calls = world.timeline();
    let accept = calls
        .iter()
        .rposition(|c| c.starts_with("accept_event"))
        .expect("accept event");
    assert_eq!(
        calls[accept + 1..],
        ["work_item", "Receive(0..512)"],
        "the first receive comes from the connection's work item"
    );
    let receive = take_receive(&world, io).expect("first receive");
    let before = world.timeline().len();
    assert_eq!(world.deliver(receive, b"hello"), 5);
    assert_eq!(
        world.timeline()[before..],
        ["work_item", "Receive(5..512)", "Send(0..5)"],
        "the receive completion's follow-up (the next receive, then the send, completed \
         inline) is one work item"
    );
    assert!(world.violations().is_empty(), "{:?}", world.violations());
    world.drain();
    finish(&world, &client);
}

#[test]
fn a_run_gives_its_worker_back_when_completions_keep_coming_inline() {
    // Every receive and send completes inline: one completion would keep its run going for the
    // whole transfer. The run queues its successor after a bounded number of batches instead.
    let (world, client) = one_listener(4, 512);
    let io = connect(&world);
    let receive = take_receive(&world, io).expect("first receive");
    world.set_mode(Mode::InlineReceives(200));
    let before = world.work_items_run();
    assert_eq!(world.deliver(receive, b"x"), 1);
    let runs = world.work_items_run() - before;
    assert!(runs >= 10, "the 201 inline receives took {runs} run(s)");
    assert_eq!(client.stats().snapshot().bytes_sent, 201);
    assert!(world.violations().is_empty(), "{:?}", world.violations());
    world.set_mode(Mode::Pending);
    world.drain();
    finish(&world, &client);
}

#[test]
fn bytes_come_back_in_order_with_partial_sends() {
    scenario::assert_sends_back_what_it_receives(MIRROR);
}

#[test]
fn the_runner_asks_for_a_receive_again_after_each_completion() {
    let (world, client) = one_listener(4, 512);
    let io = connect(&world);
    let receive = take_receive(&world, io).unwrap();
    assert_eq!(world.deliver(receive, &[1; 512]), 512);
    assert!(
        take_receive(&world, io).is_none(),
        "buffer full: the handler asks for no receive (backpressure)"
    );
    let send = take_send(&world, io).expect("send the full buffer back");
    assert_eq!(send.call, Call::Send(0..512));
    world.complete(send, Completion::Sent(Ok(100)));
    assert!(
        take_receive(&world, io).is_none(),
        "Mirror waits until all is sent"
    );
    let send = take_send(&world, io).expect("rest of the data");
    assert_eq!(send.call, Call::Send(100..512));
    world.succeed(send);
    let receive = take_receive(&world, io).expect("asked again after the send completed");
    assert_eq!(receive.call, Call::Receive(0..512));
    assert_eq!(client.stats().snapshot().bytes_sent, 512);
    world.complete(receive, Completion::Received(Err(NtStatus::CANCELLED)));
    world.drain();
    finish(&world, &client);
}

#[test]
fn fin_finishes_pending_sends_then_disconnects_then_closes() {
    let (world, client) = one_listener(4, 512);
    let io = connect(&world);
    let receive = take_receive(&world, io).unwrap();
    world.deliver(receive, b"bye");
    let send = take_send(&world, io).unwrap();
    let receive = take_receive(&world, io).unwrap();
    world.complete(receive, Completion::Received(Ok(0))); // FIN
    assert!(take_receive(&world, io).is_none(), "no receive after FIN");
    assert!(
        world.pending().iter().all(|op| op.call != Call::Disconnect),
        "sends first"
    );
    world.complete(send, Completion::Sent(Ok(3)));
    let disconnect = world
        .take_on(io, |c| *c == Call::Disconnect)
        .expect("graceful disconnect");
    world.succeed(disconnect);
    let close = world
        .take_on(io, |c| *c == Call::Close)
        .expect("then close");
    world.succeed(close);
    assert_eq!(client.stats().snapshot().active, 0);
    assert_eq!(
        client.platform().live_with_tag(CONNECTION_TAG),
        0,
        "connection freed"
    );
    assert!(
        lines(&client, Level::Info)
            .iter()
            .any(|l| l.contains("closed gracefully"))
    );
    finish(&world, &client);
}

#[test]
fn errors_and_resets_close_abortively() {
    let (world, client) = one_listener(4, 512);
    // Reset on receive, with a send outstanding: close at once, the send is cancelled.
    let io = connect(&world);
    let receive = take_receive(&world, io).unwrap();
    world.deliver(receive, b"abc");
    let send = take_send(&world, io).unwrap();
    let receive = take_receive(&world, io).unwrap();
    world.complete(
        receive,
        Completion::Received(Err(NtStatus::CONNECTION_RESET)),
    );
    assert!(
        world
            .pending()
            .iter()
            .any(|op| op.io == io && op.call == Call::Close),
        "close while send pending"
    );
    world.complete(send, Completion::Sent(Err(NtStatus::CANCELLED)));
    let close = world.take_on(io, |c| *c == Call::Close).unwrap();
    world.succeed(close);
    // Send failure.
    let io = connect(&world);
    let receive = take_receive(&world, io).unwrap();
    world.deliver(receive, b"abc");
    let send = take_send(&world, io).unwrap();
    world.complete(send, Completion::Sent(Err(NtStatus::CONNECTION_ABORTED)));
    world.drain();
    // Disconnect failure.
    let io = connect(&world);
    let receive = take_receive(&world, io).unwrap();
    world.complete(receive, Completion::Received(Ok(0)));
    let disconnect = world.take_on(io, |c| *c == Call::Disconnect).unwrap();
    world.complete(
        disconnect,
        Completion::Disconnected(Err(NtStatus::CONNECTION_RESET)),
    );
    world.drain();
    let stats = client.stats().snapshot();
    assert_eq!(
        (stats.active, stats.failures),
        (0, 0),
        "peer errors are not driver failures"
    );
    assert!(
        lines(&client, Level::Info)
            .iter()
            .any(|l| l.contains("0xC000020D"))
    );
    finish(&world, &client);
}

#[test]
fn completions_reporting_more_than_asked_are_errors_not_panics() {
    let (world, client) = one_listener(4, 512);
    let io = connect(&world);
    let receive = take_receive(&world, io).unwrap();
    world.complete(receive, Completion::Received(Ok(513)));
    let close = world.take_on(io, |c| *c == Call::Close).expect("closed");
    world.succeed(close);
    let io = connect(&world);
    let receive = take_receive(&world, io).unwrap();
    world.deliver(receive, b"12345");
    let send = take_send(&world, io).unwrap();
    world.complete(send, Completion::Sent(Ok(usize::MAX)));
    world.drain();
    let io = connect(&world);
    let receive = take_receive(&world, io).unwrap();
    world.deliver(receive, b"1");
    let send = take_send(&world, io).unwrap();
    world.complete(send, Completion::Sent(Ok(0)));
    world.drain();
    assert_eq!(client.stats().snapshot().failures, 3);
    assert_eq!(client.stats().snapshot().bytes_sent, 0);
    assert!(
        lines(&client, Level::Error)
            .iter()
            .any(|l| l.contains("513 bytes, 512 asked for"))
    );
    finish(&world, &client);
}

#[test]
fn the_steady_state_allocates_nothing() {
    let (world, client) = one_listener(4, 512);
    let io = connect(&world);
    let allocations = client.platform().allocations();
    let mut delivered = 0;
    for round in 0..200_usize {
        let receive = take_receive(&world, io).expect("receive");
        let data = [round as u8; 40];
        delivered += world.deliver(receive, &data);
        let send = take_send(&world, io).expect("send");
        world.succeed(send);
    }
    assert_eq!(
        client.platform().allocations(),
        allocations,
        "echo allocated memory"
    );
    assert!(delivered > 7000);
    assert_eq!(client.stats().snapshot().bytes_sent, delivered as u64);
    finish(&world, &client);
}

#[test]
fn inline_completions_echo_without_recursion() {
    let (world, client) = one_listener(4, 512);
    world.set_mode(Mode::Inline);
    let io = connect(&world);
    for _ in 0..50 {
        let receive = take_receive(&world, io).expect("receive");
        world.deliver(receive, b"inline");
        // The send completed inline and the next receive was posted.
    }
    assert_eq!(client.stats().snapshot().bytes_sent, 300);
    let receive = take_receive(&world, io).expect("receive");
    world.complete(receive, Completion::Received(Ok(0)));
    // Disconnect and close complete inline.
    assert_eq!(client.stats().snapshot().active, 0);
    finish(&world, &client);
}

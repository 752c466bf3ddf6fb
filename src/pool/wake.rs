//! Waiting on a `Notify` for a condition to end, without missing the wake that ends it:
//! register first, then look (`notify_waiters` stores no permit for a waiter not yet
//! registered).

use tokio::sync::Notify;

/// Resolves at the next wake of `notify`, or at once if `still` answers false once this
/// waiter is registered (so a wake between the caller's last look and this wait is not
/// missed). Cancel safe.
pub(super) async fn until_woken(notify: &Notify, still: impl FnOnce() -> bool) {
    let woken = notify.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    if still() {
        woken.await;
    }
}

//! The credentials panel: for a secured Herald, a person pastes a subscriber token
//! (sent as the `herald_token` cookie) and a publish key (sent as `Authorization` with
//! pushes, tasks and the client list). An open Herald needs neither.

use leptos::{ev::SubmitEvent, prelude::*};

use crate::stream::ClientStream;

/// A form (`aria-label="Credentials"`) with "Subscriber token" and "Publish key".
#[component]
pub fn CredentialsPanel(stream: ClientStream) -> impl IntoView {
    let token = RwSignal::new(String::new());
    let publish_key = RwSignal::new(String::new());
    let saved = RwSignal::new(false);

    #[cfg(any(feature = "hydrate", feature = "csr"))]
    Effect::new(move || {
        let (stored_token, stored_key) = crate::browser::credentials();
        token.set(stored_token);
        publish_key.set(stored_key);
    });

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        #[cfg(any(feature = "hydrate", feature = "csr"))]
        crate::browser::set_credentials(
            token.get_untracked().trim(),
            publish_key.get_untracked().trim(),
        );
        saved.set(true);
        stream.reopen.update(|n| *n += 1);
    };

    view! {
        <section class="card credentials" aria-label="Credentials">
            <h2>"Credentials"</h2>
            <form class="stack" aria-label="Credentials" autocomplete="off" on:submit=on_submit>
                <label for="subscriber-token">"Subscriber token"</label>
                <input id="subscriber-token" type="password" bind:value=token/>
                <label for="publish-key">"Publish key"</label>
                <input id="publish-key" type="password" bind:value=publish_key/>
                <button type="submit">"Use"</button>
                <p class="hint">
                    "Only for a Herald started with --subscriber-secret or --publish-key. "
                    "Kept in this tab only."
                </p>
                <Show when=move || saved.get()>
                    <p class="hint" data-testid="credentials-saved">"Saved; reconnecting."</p>
                </Show>
            </form>
        </section>
    }
}

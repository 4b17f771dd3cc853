//! The page at `/`: the panels in a responsive grid, sharing one [`ClientStream`].

use leptos::prelude::*;

use crate::{
    clients::ClientsPanel, connection::ConnectionPanel, credentials::CredentialsPanel,
    messages::MessageList, push::PushForm, stream::ClientStream, task::TaskPanel,
};

/// The one page (docs/contract.md §4).
#[component]
pub fn HomePage() -> impl IntoView {
    let stream = ClientStream::new();

    view! {
        <header class="masthead">
            <h1>"Herald"</h1>
            <p class="tagline">"Server push over Server-Sent Events"</p>
        </header>
        // Each panel is type-erased: the page's full view type is otherwise deep enough
        // to overflow rustc's query depth in release builds (without erase_components).
        <main class="panels">
            {view! { <ConnectionPanel stream/> }.into_any()}
            {view! { <PushForm stream/> }.into_any()}
            {view! { <MessageList stream/> }.into_any()}
            {view! { <TaskPanel/> }.into_any()}
            {view! { <ClientsPanel client_id=stream.client_id/> }.into_any()}
            {view! { <CredentialsPanel stream/> }.into_any()}
        </main>
    }
}

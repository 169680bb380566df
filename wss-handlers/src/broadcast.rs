//! [`Broadcast`]: every message a client sends goes, unchanged, to every other client.

use wss_server::{
    ConnectionEvent, ConnectionHandler, Frame, MessageEvent, ServerHandler, WebSocketConnection,
    WebSocketServer,
};

/// A relay: every text or binary message a client sends goes, byte for byte and with its own
/// frame type, to every other `Connected` client of the server, and never back to its sender.
///
/// These are the receivers of tokio-tungstenite's broadcast peer (`tt-echo --mode broadcast`
/// in `benches/`), which sends each message to every registered client but the sender, so
/// the two servers do the same work in a benchmark. Unlike [`Chat`](crate::Chat) there is no
/// welcome, no notice and no wrapping: a client only ever receives what others sent.
///
/// The message is framed once and the same buffer is queued for every receiver
/// ([`WebSocketServer::publish_frame`] on the server's own topic). With a shared broker
/// ([`WebServerOptions::broker`](wss_server::WebServerOptions::broker), `wss --redis`) it
/// reaches every client of every node; the sender is only excluded on its own node, where it
/// is connected.
///
/// Run it with [`DataType::Text`](wss_server::DataType::Text) (the default): text arrives as
/// text and binary as bytes, so the relayed frame is the received one. `Blob` would relay text
/// as binary frames, and `Object` would relay the JSON re-serialised.
///
/// ```no_run
/// use wss_handlers::Broadcast;
/// use wss_server::{ServerOptions, WebServer, WebServerOptions, WebSocketServer};
///
/// let web = WebServer::start(WebServerOptions::default().with_address("127.0.0.1", 0))?;
/// let wss = WebSocketServer::new(&web, Broadcast, ServerOptions::default().with_path("/"))?;
/// # drop(wss);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Broadcast;

/// The per-connection half of [`Broadcast`].
#[derive(Debug, Default, Clone, Copy)]
pub struct BroadcastConnection;

impl ServerHandler for Broadcast {
    type Connection = BroadcastConnection;

    fn on_connection(
        &mut self,
        _: &WebSocketServer,
        _: &ConnectionEvent,
    ) -> Option<BroadcastConnection> {
        Some(BroadcastConnection)
    }
}

impl ConnectionHandler for BroadcastConnection {
    fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
        // Framing here rather than through `broadcast(data)` saves cloning the payload into a
        // second `Data`: the frame is the only copy every receiver shares.
        let frame = Frame::encode(&event.data);
        ws.wss().publish_frame(None, &frame, Some(ws.id()));
    }
}

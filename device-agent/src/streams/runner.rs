//! The thin async task of one stream: publishes what [`StreamState`] allows, reads the
//! container's output only while the window is open, hands the gateway's bytes to a
//! writer task (so a process that is blocked writing output never blocks its stdin), and
//! ends with the exit code, an error, the gateway's close, the idle timeout or the loss
//! of the MQTT session. Dropping the connection gives the process EOF / SIGHUP.

use std::time::Instant;

use edge_protocol::{
    DEFAULT_STREAM_WINDOW_BYTES, Message, RequestId, StreamChannel, StreamClose, StreamData,
    StreamErrorCode, StreamOpened, StreamResize,
};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::engine_io::{Input, StreamIo, close_with};
use super::stream_state::{Inbound, StreamState};
use crate::publish_ledger::StreamPublisher;

/// What the gateway sent on an open stream.
#[derive(Debug)]
pub enum StreamInput {
    Data(StreamData),
    Credit(edge_protocol::StreamCredit),
    Resize(StreamResize),
    /// The gateway ended the stream: no answer.
    Close(StreamClose),
}

/// Everything one stream task needs.
#[derive(Debug)]
pub struct StreamRun {
    pub id: RequestId,
    pub publisher: StreamPublisher,
    /// Bytes the gateway granted.
    pub send_window: u64,
    pub idle_timeout: std::time::Duration,
    pub inputs: mpsc::Receiver<StreamInput>,
    /// Cancelled on session loss or agent shutdown: ends without an answer.
    pub cancel: CancellationToken,
}

enum Write {
    Data(Vec<u8>),
    End,
}

/// Writes the gateway's bytes in order; reports each write's size. Ends on a write
/// error (the process closed its stdin), on `End` after closing the write half, or when
/// the stream drops its sender.
async fn write_input(
    mut input: Input,
    mut writes: mpsc::UnboundedReceiver<Write>,
    written: mpsc::UnboundedSender<usize>,
) {
    while let Some(w) = writes.recv().await {
        match w {
            Write::Data(data) => {
                if let Err(e) = input.write_all(&data).await {
                    tracing::debug!(error = %e, "stream input closed");
                    return;
                }
                let _ = input.flush().await;
                let _ = written.send(data.len());
            }
            Write::End => {
                let _ = input.shutdown().await;
                // Keep the half-closed connection until the stream ends.
                writes.recv().await;
                return;
            }
        }
    }
}

impl StreamRun {
    async fn send(&self, message: Message) -> bool {
        match self.publisher.publish(&self.id, message).await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(stream = %self.id, error = %e, "stream message not sent");
                false
            }
        }
    }

    /// Answers an open that failed.
    pub async fn refuse(self, close: StreamClose) {
        self.send(close.into()).await;
    }

    /// Serves the opened container end until the stream is over.
    pub async fn serve(mut self, io: StreamIo) {
        let StreamIo {
            mut output,
            input,
            control,
            output_channels,
        } = io;
        let input_channel = input.as_ref().map(|_| match control {
            super::engine_io::Control::Socket => StreamChannel::Data,
            _ => StreamChannel::Stdin,
        });
        let mut state = StreamState::new(
            self.send_window,
            DEFAULT_STREAM_WINDOW_BYTES,
            input_channel,
            self.idle_timeout,
            Instant::now(),
        );
        let (writes_tx, writes_rx) = mpsc::unbounded_channel();
        let (written_tx, mut written_rx) = mpsc::unbounded_channel();
        let writer = input.map(|input| tokio::spawn(write_input(input, writes_rx, written_tx)));
        let opened = StreamOpened {
            window_bytes: DEFAULT_STREAM_WINDOW_BYTES,
            version: Some(edge_protocol::STREAM_PROTOCOL_VERSION),
        };
        if !self.send(opened.into()).await {
            return;
        }
        let mut output_done = false;
        let mut process_ended = false;
        let close = loop {
            while let Some(frame) = state.next_frame() {
                if !self.send(frame.into()).await {
                    break;
                }
            }
            if output_done && state.output_flushed() {
                process_ended = true;
                for channel in &output_channels {
                    if let Some(end) = state.end_of(*channel) {
                        self.send(end.into()).await;
                    }
                }
                break Some(match control.exit_code().await {
                    Ok(exit_code) => StreamClose {
                        exit_code,
                        error: None,
                    },
                    Err(close) => close,
                });
            }
            let idle = tokio::time::Instant::from_std(state.idle_deadline());
            tokio::select! {
                _ = self.cancel.cancelled() => break None,
                input = self.inputs.recv() => match input {
                    None | Some(StreamInput::Close(_)) => break None,
                    Some(StreamInput::Credit(c)) => state.on_credit(c),
                    Some(StreamInput::Resize(r)) => control.resize(r.size).await,
                    Some(StreamInput::Data(d)) => match state.on_data(d, Instant::now()) {
                        Ok(Inbound::Duplicate) => {}
                        Ok(Inbound::Write { data, end }) => {
                            if !data.is_empty() {
                                let _ = writes_tx.send(Write::Data(data));
                            }
                            if end {
                                let _ = writes_tx.send(Write::End);
                            }
                        }
                        Err(close) => break Some(close),
                    },
                },
                Some(bytes) = written_rx.recv() => {
                    if let Some(credit) = state.written(bytes) {
                        self.send(credit.into()).await;
                    }
                }
                item = output.next(), if !output_done && state.wants_output() => match item {
                    Some(Ok((channel, data))) => state.push_output(channel, data, Instant::now()),
                    Some(Err(e)) => {
                        tracing::debug!(stream = %self.id, error = %e, "stream output ended");
                        output_done = true;
                    }
                    None => output_done = true,
                },
                _ = tokio::time::sleep_until(idle) => break Some(state.idle_close()),
            }
        };
        if let Some(close) = close {
            if close
                .error
                .as_ref()
                .is_some_and(|e| e.code == StreamErrorCode::Protocol)
            {
                tracing::warn!(stream = %self.id, error = ?close.error, "stream broken");
            }
            self.send(close.into()).await;
        }
        if !process_ended {
            control.hang_up().await;
        }
        // Dropping the output and the writer closes the connection: the process sees
        // EOF, as when the kubelet's stream goes away.
        drop(writes_tx);
        drop(output);
        if let Some(writer) = writer {
            writer.abort();
        }
    }
}

/// The close for a stream whose messages pile up faster than it handles them.
pub fn overrun_close() -> StreamClose {
    close_with(
        StreamErrorCode::Protocol,
        "the gateway sent more messages than the stream's window allows",
    )
}

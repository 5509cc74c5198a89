//! Stage logic (pure, sans-IO): which participant a WHEP viewer's pre-allocated slots show
//! ([`slots`]), who is the active speaker from RFC 6464 audio levels ([`speaker`]), and the
//! JSON the pages get about the stage ([`message`]). Time is passed in (Unix or monotonic ms).

pub mod message;
pub mod slots;
pub mod speaker;

pub use message::{SlotMids, StageEntry, StageMessage, SystemEvent, speaker_json, system_json};
pub use slots::{Candidate, SlotMap};
pub use speaker::{LevelMeter, SpeakerSelector, audio_level_ext_id, loudness};

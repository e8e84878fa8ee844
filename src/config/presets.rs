//! OpenAI-compatible vendors as presets of the one OpenAI adapter: a preset only fills in the
//! base URL and the conventional key variable; the wire code is shared.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    Openai,
    Mistral,
    Groq,
    Together,
    Fireworks,
    Deepseek,
    Openrouter,
    Vllm,
    Ollama,
    Lmstudio,
}

impl Preset {
    /// Default base URL (with the version path).
    pub fn base_url(self) -> &'static str {
        match self {
            Preset::Openai => "https://api.openai.com/v1",
            Preset::Mistral => "https://api.mistral.ai/v1",
            Preset::Groq => "https://api.groq.com/openai/v1",
            Preset::Together => "https://api.together.xyz/v1",
            Preset::Fireworks => "https://api.fireworks.ai/inference/v1",
            Preset::Deepseek => "https://api.deepseek.com/v1",
            Preset::Openrouter => "https://openrouter.ai/api/v1",
            Preset::Vllm => "http://127.0.0.1:8000/v1",
            Preset::Ollama => "http://127.0.0.1:11434/v1",
            Preset::Lmstudio => "http://127.0.0.1:1234/v1",
        }
    }

    /// The environment variable the vendor's own SDKs read, used when `api_key` is not given.
    /// Local servers need no key.
    pub fn key_env(self) -> Option<&'static str> {
        match self {
            Preset::Openai => Some("OPENAI_API_KEY"),
            Preset::Mistral => Some("MISTRAL_API_KEY"),
            Preset::Groq => Some("GROQ_API_KEY"),
            Preset::Together => Some("TOGETHER_API_KEY"),
            Preset::Fireworks => Some("FIREWORKS_API_KEY"),
            Preset::Deepseek => Some("DEEPSEEK_API_KEY"),
            Preset::Openrouter => Some("OPENROUTER_API_KEY"),
            Preset::Vllm | Preset::Ollama | Preset::Lmstudio => None,
        }
    }
}

//! How text becomes terms, shared by every backend so that a word, a phrase or
//! an attribute value matches the same events whatever engine stores them.

use tantivy::tokenizer::{
    LowerCaser, RawTokenizer, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, TokenizerManager,
};

/// Full text: split on non-alphanumerics, lowercase, no stemming (logs are not
/// prose: `interrupted` must not match `interrupt`).
pub(crate) const TEXT_ANALYZER: &str = "logtext";
/// Exact values compared case-insensitively (attribute values).
pub(crate) const KEYWORD_ANALYZER: &str = "keyword";
/// Exact values compared as sent (service, host, ids).
pub(crate) const EXACT_ANALYZER: &str = "exact";

/// Tokens this long or longer are not indexed (they stay in the stored event).
pub(crate) const MAX_TOKEN_BYTES: usize = 255;
/// Exact values this long or longer are not indexed.
pub(crate) const MAX_EXACT_BYTES: usize = 1024;

/// The analyzers the embedded schema names.
pub(crate) fn tokenizers() -> TokenizerManager {
    let manager = TokenizerManager::default();
    manager.register(TEXT_ANALYZER, text_analyzer());
    manager.register(KEYWORD_ANALYZER, keyword_analyzer());
    manager.register(
        EXACT_ANALYZER,
        TextAnalyzer::builder(RawTokenizer::default())
            .filter(RemoveLongFilter::limit(MAX_EXACT_BYTES))
            .build(),
    );
    manager
}

/// The analyzer of `message`, also used to cut query words the same way.
pub(crate) fn text_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .build()
}

/// The analyzer of attribute string values: the whole value, lowercased,
/// unless it is [`MAX_EXACT_BYTES`] or longer.
pub(crate) fn keyword_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(RawTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_EXACT_BYTES))
        .filter(LowerCaser)
        .build()
}

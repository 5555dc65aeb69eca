//! Encoded images in Hugging Face dataset parquet shards, read with the parquet crate's record API.
//!
//! The `datasets` library stores an `Image` feature as `struct { bytes: binary, path: string }`, both
//! fields nullable, holding the encoded PNG/JPEG file. [`read_encoded_images`] reads that struct (and
//! optionally a primitive group-key column) row by row; [`write_image_parquet`] writes the same layout
//! for tests and the loopback Hub.
//!
//! Malformed files never panic the caller: every error of the parquet crate, and any panic it raises
//! on hostile input, becomes an [`memgen_io::FileError::BadFile`] naming the file.

use crate::{Error, Result};
use ::parquet::basic::{Compression, Type as PhysicalType};
use ::parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use ::parquet::file::properties::WriterProperties;
use ::parquet::file::reader::{FileReader, SerializedFileReader};
use ::parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
use ::parquet::record::{Field, Row};
use ::parquet::schema::parser::parse_message_type;
use ::parquet::schema::types::{Type, TypePtr};
use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

/// One encoded image read from a parquet shard.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedImage {
    /// The encoded file (PNG, JPEG, ...), as stored in the `bytes` field of the image struct.
    pub bytes: Vec<u8>,
    /// The `path` field of the image struct (the original file name), when present.
    pub path: Option<String>,
    /// The group-key column's value in its string form, when a group column was asked for and
    /// the value is not null.
    pub group: Option<String>,
}

/// The schema [`write_image_parquet`] writes: the `datasets` library's `Image` feature plus a label.
pub const IMAGE_PARQUET_SCHEMA: &str = "message schema {
    optional group image {
        optional binary bytes;
        optional binary path (STRING);
    }
    optional int64 label;
}";

/// Rows per row group written by [`write_image_parquet`] (small, so tests cover several groups).
const ROWS_PER_GROUP: usize = 16;

/// Read up to `limit` encoded images (all when None) from column `column` of the parquet file `file`,
/// in row order, with the group key from `group_column` when given.
///
/// `column` must be a struct with a binary `bytes` field (the `datasets` `Image` layout); `group_column`
/// must be a top-level primitive column (integers, strings, ... are returned in their string form).
/// Errors name `file`: not parquet, truncated or corrupt, a missing column (listing those that exist),
/// a column of the wrong type, or a row whose image (or its `bytes`) is null.
pub fn read_encoded_images(
    file: &Path,
    column: &str,
    group_column: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<EncodedImage>> {
    let outcome = catch_unwind(AssertUnwindSafe(|| read_guarded(file, column, group_column, limit)));
    match outcome {
        Ok(result) => result,
        Err(panic) => Err(Error::bad_file(
            file,
            format!("corrupt parquet file (the parquet reader panicked: {})", panic_message(&*panic)),
        )),
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// [`read_encoded_images`] without the panic guard.
fn read_guarded(
    file: &Path,
    column: &str,
    group_column: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<EncodedImage>> {
    let bad = |msg: String| Error::bad_file(file, msg);
    let handle = File::open(file).map_err(|e| Error::io(file, e))?;
    let reader =
        SerializedFileReader::new(handle).map_err(|e| bad(format!("not a readable parquet file: {e}")))?;
    let root = reader.metadata().file_metadata().schema();
    let projection = projection(root, column, group_column).map_err(bad)?;
    let limit = limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let rows = reader.get_row_iter(Some(projection)).map_err(|e| bad(format!("cannot read rows: {e}")))?;
    for (index, row) in rows.enumerate() {
        let row = row.map_err(|e| bad(format!("row {index}: {e}")))?;
        out.push(row_to_image(row, column, group_column).map_err(|msg| bad(format!("row {index}: {msg}")))?);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// The projected schema holding only `column` (checked to be an image struct) and `group_column`.
fn projection(root: &Type, column: &str, group_column: Option<&str>) -> std::result::Result<Type, String> {
    let image = find_field(root, column)?;
    check_image_field(&image)?;
    let mut fields = vec![image];
    if let Some(name) = group_column {
        if name == column {
            return Err(format!("group column `{name}` is the image column"));
        }
        let group = find_field(root, name)?;
        check_group_field(&group)?;
        fields.push(group);
    }
    Type::group_type_builder(root.name())
        .with_fields(fields)
        .build()
        .map_err(|e| format!("cannot build projection: {e}"))
}

/// The top-level field `name`, or an error listing the top-level fields that exist.
fn find_field(root: &Type, name: &str) -> std::result::Result<TypePtr, String> {
    let fields = root.get_fields();
    fields.iter().find(|f| f.name() == name).cloned().ok_or_else(|| {
        let names: Vec<&str> = fields.iter().map(|f| f.name()).collect();
        format!("no column `{name}`; the columns are: {}", names.join(", "))
    })
}

/// Accept a non-repeated struct with a non-repeated binary `bytes` field.
fn check_image_field(field: &Type) -> std::result::Result<(), String> {
    let name = field.name();
    if !field.is_group() || is_repeated(field) {
        return Err(format!(
            "column `{name}` is not an image struct {{bytes: binary, path: string}} but {}",
            describe(field)
        ));
    }
    match field.get_fields().iter().find(|f| f.name() == "bytes") {
        Some(b)
            if b.is_primitive() && !is_repeated(b) && b.get_physical_type() == PhysicalType::BYTE_ARRAY =>
        {
            Ok(())
        }
        Some(b) => Err(format!("field `{name}.bytes` is {}, not binary", describe(b))),
        None => Err(format!("column `{name}` is a struct without a `bytes` field")),
    }
}

/// Accept a non-repeated primitive column as group key.
fn check_group_field(field: &Type) -> std::result::Result<(), String> {
    if field.is_primitive() && !is_repeated(field) {
        Ok(())
    } else {
        Err(format!("group column `{}` is {}, not a primitive value", field.name(), describe(field)))
    }
}

/// Whether a field is repeated (a list).
fn is_repeated(field: &Type) -> bool {
    let info = field.get_basic_info();
    info.has_repetition() && info.repetition() == ::parquet::basic::Repetition::REPEATED
}

/// A short description of a field's type for error messages.
fn describe(field: &Type) -> String {
    let repeated = if is_repeated(field) { "repeated " } else { "" };
    if field.is_group() {
        let names: Vec<&str> = field.get_fields().iter().map(|f| f.name()).collect();
        format!("a {repeated}group {{{}}}", names.join(", "))
    } else {
        format!("a {repeated}{} value", field.get_physical_type())
    }
}

/// One record of the projection as an [`EncodedImage`].
fn row_to_image(
    row: Row,
    column: &str,
    group_column: Option<&str>,
) -> std::result::Result<EncodedImage, String> {
    let mut image = None;
    let mut group = None;
    for (name, field) in row.into_columns() {
        if name == column {
            image = Some(field);
        } else if Some(name.as_str()) == group_column {
            group = field_to_key(field);
        }
    }
    let (bytes, path) = match image {
        Some(Field::Group(inner)) => image_struct(inner)?,
        Some(Field::Null) | None => return Err(format!("image `{column}` is null")),
        Some(other) => return Err(format!("image `{column}` is not a struct: {other}")),
    };
    Ok(EncodedImage { bytes, path, group })
}

/// The `bytes` and `path` fields of an image struct.
fn image_struct(inner: Row) -> std::result::Result<(Vec<u8>, Option<String>), String> {
    let mut bytes = None;
    let mut path = None;
    for (name, field) in inner.into_columns() {
        match (name.as_str(), field) {
            ("bytes", Field::Bytes(b)) => bytes = Some(b.data().to_vec()),
            ("bytes", Field::Str(s)) => bytes = Some(s.into_bytes()),
            ("path", Field::Str(s)) => path = Some(s),
            ("path", Field::Bytes(b)) => path = Some(String::from_utf8_lossy(b.data()).into_owned()),
            _ => {}
        }
    }
    let bytes = bytes.ok_or("image bytes are null")?;
    Ok((bytes, path))
}

/// A primitive value in its string form; None for null (and for nested values, which the schema
/// check already excludes).
fn field_to_key(field: Field) -> Option<String> {
    match field {
        Field::Null | Field::Group(_) | Field::ListInternal(_) | Field::MapInternal(_) => None,
        Field::Str(s) => Some(s),
        Field::Bytes(b) => Some(String::from_utf8_lossy(b.data()).into_owned()),
        other => Some(other.to_string()),
    }
}

/// Write `rows` (encoded image, original path, optional label) to `file` with the schema
/// [`IMAGE_PARQUET_SCHEMA`], snappy-compressed, in row groups of 16 rows.
pub fn write_image_parquet(file: &Path, rows: &[(Vec<u8>, String, Option<i64>)]) -> Result<()> {
    let bytes = encode_image_parquet(rows)
        .map_err(|e| Error::bad_file(file, format!("cannot write parquet: {e}")))?;
    std::fs::write(file, bytes).map_err(|e| Error::io(file, e))
}

/// The bytes of the parquet file [`write_image_parquet`] writes, built in memory (the loopback Hub
/// of the tests serves such files).
pub fn encode_image_parquet(rows: &[(Vec<u8>, String, Option<i64>)]) -> ::parquet::errors::Result<Vec<u8>> {
    let schema = Arc::new(parse_message_type(IMAGE_PARQUET_SCHEMA)?);
    let props = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
    let mut writer = SerializedFileWriter::new(Vec::new(), schema, props)?;
    for chunk in rows.chunks(ROWS_PER_GROUP) {
        let mut group = writer.next_row_group()?;
        write_bytes_column(&mut group, chunk.iter().map(|r| r.0.clone()))?;
        write_bytes_column(&mut group, chunk.iter().map(|r| r.1.clone().into_bytes()))?;
        write_label_column(&mut group, chunk.iter().map(|r| r.2))?;
        group.close()?;
    }
    writer.into_inner()
}

/// Write the next column, a fully defined optional binary leaf under the optional `image` group
/// (definition level 2 for every value).
fn write_bytes_column(
    group: &mut SerializedRowGroupWriter<'_, Vec<u8>>,
    values: impl Iterator<Item = Vec<u8>>,
) -> ::parquet::errors::Result<()> {
    let values: Vec<ByteArray> = values.map(ByteArray::from).collect();
    let defs = vec![2i16; values.len()];
    let mut column = next_column(group)?;
    column.typed::<ByteArrayType>().write_batch(&values, Some(&defs), None)?;
    column.close()
}

/// Write the next column, the optional top-level `label` (definition level 1 when present, 0 when null).
fn write_label_column(
    group: &mut SerializedRowGroupWriter<'_, Vec<u8>>,
    labels: impl Iterator<Item = Option<i64>>,
) -> ::parquet::errors::Result<()> {
    let labels: Vec<Option<i64>> = labels.collect();
    let values: Vec<i64> = labels.iter().flatten().copied().collect();
    let defs: Vec<i16> = labels.iter().map(|l| i16::from(l.is_some())).collect();
    let mut column = next_column(group)?;
    column.typed::<Int64Type>().write_batch(&values, Some(&defs), None)?;
    column.close()
}

/// The next column writer of a row group, which must exist.
fn next_column<'a>(
    group: &'a mut SerializedRowGroupWriter<'_, Vec<u8>>,
) -> ::parquet::errors::Result<::parquet::file::writer::SerializedColumnWriter<'a>> {
    group.next_column()?.ok_or_else(|| {
        ::parquet::errors::ParquetError::General("schema has fewer columns than written".into())
    })
}

"""What the importer and the exporter say, in English and Chinese.

Field messages (a wrong number, a missing value) are the record service's
own (:mod:`engine.i18n`): a row is refused with the very words a form
would show.  This catalogue holds only what is about files, columns and
the values a spreadsheet gives instead of ids.
"""

from __future__ import annotations

from typing import Any

from engine.i18n import words_in

WORDS: dict[str, dict[str, str]] = {
    "no_import_right": {"en": "You may not import {entity}.", "zh": "您无权导入{entity}。"},
    "no_export_right": {"en": "You may not export {entity}.", "zh": "您无权导出{entity}。"},
    "unreadable": {
        "en": "The file cannot be read as {kind}: {reason}",
        "zh": "无法按 {kind} 读取该文件:{reason}",
    },
    "unknown_format": {
        "en": "Give a .csv or .xlsx file (got '{name}').",
        "zh": "请提供 .csv 或 .xlsx 文件(收到“{name}”)。",
    },
    "xlsx_unpacks_big": {
        "en": "This XLSX file unpacks to {size} MB, more than the {limit} MB an import reads; "
              "split it, or save it as CSV.",
        "zh": "该 XLSX 文件解压后为 {size} MB,超过导入可读取的 {limit} MB;请拆分文件或另存为 CSV。",
    },
    "xlsx_packed_tight": {
        "en": "This XLSX file's part {part} unpacks to {ratio} times its size; a spreadsheet "
              "program does not save such a file, so it is not read.",
        "zh": "该 XLSX 文件的部分 {part} 解压后是原大小的 {ratio} 倍;电子表格软件不会保存这样的文件,"
              "因此不予读取。",
    },
    "xlsx_cell_too_long": {
        "en": "This XLSX file holds a cell (in {part}) longer than {limit} KB; a spreadsheet "
              "cell holds at most 32,767 characters, so the file is not read.",
        "zh": "该 XLSX 文件({part})中有一个单元格超过 {limit} KB;电子表格单元格最多 32767 个字符,"
              "因此不予读取。",
    },
    "too_many_rows": {
        "en": "This file has about {rows} rows; an import that runs while you wait takes up "
              "to {limit}. Import it in the background ({how}).",
        "zh": "该文件约有 {rows} 行;即时导入最多 {limit} 行。请使用后台导入({how})。",
    },
    "no_header": {
        "en": "The file is empty: the first row must name the columns.",
        "zh": "文件为空:第一行必须是列名。",
    },
    "bad_encoding": {
        "en": "This line is not valid {encoding} text; save the file as UTF-8 (or GBK) and try again.",
        "zh": "该行不是有效的 {encoding} 文本;请将文件另存为 UTF-8(或 GBK)后重试。",
    },
    "blank_header": {
        "en": "Column {number} has no name but holds values.",
        "zh": "第 {number} 列没有列名,却有数据。",
    },
    "unknown_column": {
        "en": "Column '{column}' matches no field of {entity}: rename it to a field's key or "
              "label, or map it in a mapping file (map it to nothing to skip it).",
        "zh": "列“{column}”与{entity}的任何字段都不对应:请改为字段的键或名称,"
              "或在映射文件中映射它(映射为空则跳过该列)。",
    },
    "column_twice": {
        "en": "Columns '{first}' and '{second}' both give the field '{field}'.",
        "zh": "列“{first}”和“{second}”都对应字段“{field}”。",
    },
    "not_importable": {
        "en": "Column '{column}': the field '{field}' cannot be imported ({reason}).",
        "zh": "列“{column}”:字段“{field}”不能导入({reason})。",
    },
    "reason_system": {"en": "the system sets it", "zh": "由系统设置"},
    "reason_lines": {
        "en": "it holds lines: give each field of a line its own column, such as '{example}'",
        "zh": "它包含明细行:请为明细的每个字段单独设一列,例如“{example}”",
    },
    "continuation_first": {
        "en": "This row continues the lines of a record, but no record comes before it: fill "
              "the record's columns on the first row of its lines.",
        "zh": "该行是某条记录的后续明细行,但前面没有记录:请在明细的第一行填写记录本身的各列。",
    },
    "record_refused": {
        "en": "Not imported with the rest of the record that starts on line {line}.",
        "zh": "未导入:从第 {line} 行开始的记录有错误,该行随之一并拒绝。",
    },
    "export_lines": {"en": "Export Excel, a row per line of {lines}",
                     "zh": "导出 Excel(每条{lines}一行)"},
    "no_lines_field": {
        "en": "{entity} has no lines '{field}' you may see.",
        "zh": "{entity}没有您可查看的明细“{field}”。",
    },
    "mapping_field_unknown": {
        "en": "The mapping sends column '{column}' to '{field}', which is not a field of {entity}.",
        "zh": "映射把列“{column}”对应到“{field}”,但{entity}没有这个字段。",
    },
    "mapping_entity": {
        "en": "This mapping is for '{mapped}', not '{entity}'.",
        "zh": "该映射属于“{mapped}”,而不是“{entity}”。",
    },
    "upsert_key": {
        "en": "'{field}' cannot identify records to update: give a unique field, a numbering "
              "field or id.",
        "zh": "“{field}”无法用于识别要更新的记录:请指定唯一字段、编号字段或 id。",
    },
    "upsert_column": {
        "en": "The file has no column for '{field}', the field records are matched on.",
        "zh": "文件中没有用于匹配记录的字段“{field}”所在的列。",
    },
    "too_many_cells": {
        "en": "This line has {count} cells, more than the {header} columns of the header.",
        "zh": "该行有 {count} 个单元格,多于表头的 {header} 列。",
    },
    "reference_unknown": {
        "en": "No {entity} has the number, key or name '{value}'.",
        "zh": "没有编号、唯一键或名称为“{value}”的{entity}。",
    },
    "reference_ambiguous": {
        "en": "'{value}' matches {count} {entity} records; give the number of the one you mean.",
        "zh": "“{value}”对应 {count} 条{entity}记录;请填写所指记录的编号。",
    },
    "user_unknown": {
        "en": "No active user has the login, name or e-mail '{value}'.",
        "zh": "没有登录名、姓名或邮箱为“{value}”的有效用户。",
    },
    "user_ambiguous": {
        "en": "'{value}' matches {count} users; give the login.",
        "zh": "“{value}”对应 {count} 个用户;请填写登录名。",
    },
    "duplicate_key": {
        "en": "The same {field} '{value}' is already on line {line} of this file.",
        "zh": "同样的{field}“{value}”已出现在本文件第 {line} 行。",
    },
    "upsert_missing": {
        "en": "No {entity} has {field} '{value}' to update.",
        "zh": "没有{field}为“{value}”的{entity}可更新。",
    },
    "upsert_blank": {
        "en": "Empty: records are matched on this field.",
        "zh": "为空:记录按此字段匹配。",
    },
    "not_a_date": {
        "en": "Expected a date such as 2026-03-01, 2026/3/1 or 2026年3月1日.",
        "zh": "应为日期,例如 2026-03-01、2026/3/1 或 2026年3月1日。",
    },
    "not_a_datetime": {
        "en": "Expected a date and time such as 2026-03-01 14:30.",
        "zh": "应为日期时间,例如 2026-03-01 14:30。",
    },
    "errors_column": {"en": "errors", "zh": "错误"},
    "line_word": {"en": "line", "zh": "行"},
    "yes": {"en": "yes", "zh": "是"},
    "no": {"en": "no", "zh": "否"},
}


def say(key: str, language: str | None = "en", **params: Any) -> str:
    """The words ``key`` in the actor's language (English when there is no translation)."""
    return words_in(WORDS, key, language, **params)

"""Rhyme, approximated with modern Mandarin: the thirteen rhyme groups (十三辙) of the finals pypinyin gives.

Tang poets rhymed by Middle Chinese readings, which modern finals only approximate (a
poem that rhymed in 750 may not in Mandarin, and the other way round), so the
figure is for comparison: generated poems against real poems of the same form,
scored the same way. A poem rhymes when the last characters of all its even lines
fall in one group.
"""

from projects.tang_poetry.data import lines

GROUPS = {
    "发花": ("a", "ia", "ua"), "梭波": ("o", "e", "uo"), "乜斜": ("ie", "ve", "ue"), "一七": ("i", "v", "er"),
    "姑苏": ("u",), "怀来": ("ai", "uai"), "灰堆": ("ei", "uei"), "遥条": ("ao", "iao"), "油求": ("ou", "iou"),
    "言前": ("an", "ian", "uan", "van"), "人辰": ("en", "in", "uen", "vn"), "江阳": ("ang", "iang", "uang"),
    "中东": ("eng", "ing", "ueng", "ong", "iong"),
}
GROUP_OF = {final: group for group, finals in GROUPS.items() for final in finals}


def group(character):
    """The rhyme group of a character's most common Mandarin reading (None when pypinyin has no reading)."""
    from pypinyin import Style, lazy_pinyin

    final = lazy_pinyin(character, style=Style.FINALS, errors="ignore")
    return GROUP_OF.get(final[0]) if final else None


def rhymes(poem):
    """Whether the last characters of a cleaned poem's even lines all fall in one rhyme group."""
    ends = [line[-1] for line in lines(poem)[1::2] if line]
    groups = {group(c) for c in ends}
    return len(ends) >= 2 and len(groups) == 1 and None not in groups


def share(poems):
    return sum(map(rhymes, poems)) / max(len(poems), 1)

"""Photos to anime: the AnimeGANv2 generator, trained adversarially with VGG content, style and colour losses."""
